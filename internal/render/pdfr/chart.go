package pdfr

import (
	"fmt"
	"math"
	"strconv"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// series is one curve of the chart: a running total per step, at most
// about maxPoint of them (a monotone curve loses nothing visible).
type series struct {
	title  string
	unit   string // of the threshold label
	points []point
	limit  float64 // the violated policy's threshold in this unit; NaN when none
	color  rgb
	tint   rgb // fill under the curve
}

// Chart geometry, mm.
const (
	panelH   = 46.0
	gutter   = 19.0 // left of the plot, for the value labels
	maxPoint = 900  // points drawn per curve
)

// point is the running total v after step x.
type point struct {
	x int64
	v float64
}

// chart draws cumulative cost and cumulative tokens per step as vector
// lines, in two panels over the same step axis, with the violated limit and
// the inflection step marked.
func (r *report) chart(b *evidence.EvidenceBundle, v stepView) {
	n := b.Steps.Len()
	if n > 0 {
		r.need(2*panelH + 60) // the heading stays with the chart
	}
	r.heading("Cost and tokens over the run")
	if n == 0 {
		if b.StepsOmitted > 0 {
			r.note("No chart: the steps are not in this export.")
		} else {
			r.note("No chart: the run has no steps.")
		}
		return
	}
	cost := series{title: "Cumulative cost (cents)", unit: "cents", limit: math.NaN(),
		color: accent, tint: rgb{221, 232, 243}}
	tokens := series{title: "Cumulative tokens", unit: "tokens", limit: math.NaN(),
		color: rgb{22, 160, 133}, tint: rgb{214, 240, 234}}
	if v.err != nil { // the timeline makes it the report's error
		return
	}
	cost.points, tokens.points = v.cost, v.tokens
	infl := v.infl // among the points
	pc := b.PolicyContext
	if th, err := strconv.ParseFloat(pc.ThresholdValue, 64); err == nil {
		switch pc.ViolationType {
		case runproof.PolicyCostLimit:
			cost.limit = th
		case runproof.PolicyTokenLimit:
			tokens.limit = th
		}
	}

	y := r.pdf.GetY() + 6
	r.panel(cost, infl, y, false)
	y += panelH + 12
	r.panel(tokens, infl, y, true)
	r.pdf.SetXY(margin, y+panelH+11)
	msg := "Each point is the running total after that step."
	if infl >= 0 {
		msg += fmt.Sprintf(" The dashed vertical line marks the inflection step %d.", cost.points[infl].x)
	}
	if !math.IsNaN(cost.limit) || !math.IsNaN(tokens.limit) {
		msg += " The dashed red line is the violated policy's threshold."
	}
	r.note(msg)
}

// panel draws one series with its top edge at y.
func (r *report) panel(s series, infl int, y float64, xLabels bool) {
	pdf := r.pdf
	x0 := margin + gutter
	w := r.width() - gutter - 2
	h := panelH
	pts := s.points
	first, last := float64(pts[0].x), float64(pts[len(pts)-1].x)
	// The curve through the points; a run of one step has its total drawn
	// level across the panel, the step in the middle.
	curve := make([][2]float64, len(pts))
	for i, p := range pts {
		curve[i] = [2]float64{float64(p.x), p.v}
	}
	if last <= first {
		first, last = first-0.5, first+0.5
		curve = [][2]float64{{first, pts[0].v}, {last, pts[0].v}}
	}
	top := pts[len(pts)-1].v
	if !math.IsNaN(s.limit) {
		top = max(top, s.limit)
	}
	step := niceStep(top / 4)
	ymax := max(step, math.Ceil(top*1.04/step)*step)
	px := func(i float64) float64 { return x0 + (i-first)/(last-first)*w }
	py := func(v float64) float64 { return y + h - v/ymax*h }

	r.font(sans, "B", 8.5, ink)
	r.text(margin, y-2.5, s.title)

	// Area under the curve, then the grid over it, then the curve.
	points := func(draw func(x, y float64)) {
		for _, p := range curve {
			draw(px(p[0]), py(p[1]))
		}
	}
	r.fill(s.tint)
	pdf.MoveTo(px(first), py(0))
	points(pdf.LineTo)
	pdf.LineTo(px(last), py(0))
	pdf.ClosePath()
	pdf.DrawPath("F")

	r.font(sans, "", 6.5, muted)
	pdf.SetLineWidth(0.15)
	for v := 0.0; v <= ymax+step/2; v += step {
		r.drawColor(gridColor)
		pdf.Line(x0, py(v), x0+w, py(v))
		label := short(v)
		r.text(x0-2-pdf.GetStringWidth(label), py(v)+1, label)
	}
	xs := max(1, niceStep((last-first)/8))
	for i := math.Ceil(first/xs)*xs + 0; i <= last; i += xs { // + 0: no label "-0"
		r.drawColor(ruleColor)
		pdf.Line(px(i), y+h, px(i), y+h+1)
		if xLabels {
			label := strconv.FormatFloat(i, 'f', -1, 64)
			r.text(px(i)-pdf.GetStringWidth(label)/2, y+h+4, label)
		}
	}
	if xLabels {
		r.text(x0+w-pdf.GetStringWidth("step index"), y+h+7.5, "step index")
	}
	r.drawColor(muted)
	pdf.SetLineWidth(0.25)
	pdf.Line(x0, y, x0, y+h)
	pdf.Line(x0, y+h, x0+w, y+h)

	r.drawColor(s.color)
	pdf.SetLineWidth(0.5)
	pdf.SetLineJoinStyle("round")
	first2 := true
	points(func(x, y float64) {
		if first2 {
			pdf.MoveTo(x, y)
			first2 = false
			return
		}
		pdf.LineTo(x, y)
	})
	pdf.DrawPath("D")

	pdf.SetDashPattern([]float64{1.5, 1}, 0)
	if !math.IsNaN(s.limit) {
		r.drawColor(red)
		pdf.SetLineWidth(0.35)
		pdf.Line(x0, py(s.limit), x0+w, py(s.limit))
		r.font(sans, "B", 7, red)
		label := "threshold " + decimal(s.limit) + " " + s.unit
		r.text(x0+2, py(s.limit)-1.2, label)
	}
	if infl >= 0 {
		xi := px(float64(pts[infl].x))
		r.drawColor(orange)
		pdf.SetLineWidth(0.35)
		pdf.Line(xi, y, xi, y+h)
		pdf.SetDashPattern(nil, 0)
		r.fill(orange)
		pdf.Circle(xi, py(pts[infl].v), 0.9, "F")
		r.font(sans, "B", 7, orange)
		label := fmt.Sprintf("inflection, step %d", pts[infl].x)
		lx := xi + 1.5
		if lx+pdf.GetStringWidth(label) > x0+w {
			lx = xi - 1.5 - pdf.GetStringWidth(label)
		}
		r.text(lx, y+3, label)
	}
	pdf.SetDashPattern(nil, 0)
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / p; {
	case f <= 1:
		return p
	case f <= 2:
		return 2 * p
	case f <= 5:
		return 5 * p
	}
	return 10 * p
}

// short writes an axis value compactly: 950, 12k, 3.5M, 9B, 4.5T.
func short(v float64) string {
	switch {
	case math.Abs(v) >= 1e12:
		return num(math.Round(v/1e11)/10) + "T"
	case math.Abs(v) >= 1e9:
		return num(math.Round(v/1e8)/10) + "B"
	case math.Abs(v) >= 1e6:
		return num(math.Round(v/1e5)/10) + "M"
	case math.Abs(v) >= 1e4:
		return num(math.Round(v/1e2)/10) + "k"
	}
	return num(math.Round(v*100) / 100)
}
