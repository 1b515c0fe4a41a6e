package pdfr

import (
	"cmp"
	"context"
	"strconv"
	"strings"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// onePageDebrief lays the debrief out on one page: as it is when it fits,
// else set tight, then tighter, and then with the remediation notes, the
// one long text people write into it, cut to the lines left (the
// debrief's JSON has them whole, and the page says so). Only a debrief
// whose own text does not fit even then runs to a second page.
func onePageDebrief(ctx context.Context, b *evidence.ExecutiveDebriefBundle, info Info) *report {
	var r *report
	for _, set := range []setting{regular, tight, tighter} {
		if r = debriefReport(ctx, b, info, set, allLines).end(); r.pdf.PageCount() == 1 {
			return r
		}
	}
	if b.RemediationNotes == "" {
		return r
	}
	// How many lines of notes fit: one, and what is left below it.
	short := debriefReport(ctx, b, info, tighter, 1).end()
	if short.pdf.PageCount() > 1 {
		return r // the debrief's own text runs long
	}
	if fit := debriefReport(ctx, b, info, tighter, 1+short.linesLeft(tighter.facts.lh, 0)).end(); fit.pdf.PageCount() == 1 {
		return fit
	}
	return short
}

// allLines shows the remediation notes whole.
const allLines = -1

// debriefReport lays out the leader's debrief in set: risk, what happened,
// what it cost, how fast it was handled, what to do next. The remediation
// notes take at most notesLines lines (allLines: all they need). The
// references to the evidence come last, in small type, out of the
// sentences.
func debriefReport(ctx context.Context, b *evidence.ExecutiveDebriefBundle, info Info, set setting, notesLines int) *report {
	r := newReport(ctx, info, pageInfo{title: "Executive debrief", bundleID: b.BundleID, hash: b.ContentHash,
		class: b.Classification, created: b.CreatedAt})
	r.set = set
	sub := "Prepared by " + b.PreparedBy
	if b.PreparedFor != "" {
		sub = "Prepared for " + b.PreparedFor + " by " + b.PreparedBy
	}
	r.title("Executive debrief", sub+", "+day(b.CreatedAt))
	r.badge(b)

	r.heading("What happened")
	r.para(b.IncidentSummary)
	r.heading("Business impact")
	r.para(b.BusinessImpact)

	r.heading("Key metrics")
	contain := "not contained"
	if b.TimeToContainSeconds != nil {
		contain = evidence.Duration(*b.TimeToContainSeconds)
	}
	prevented := cmp.Or(b.CostPrevented(), "not estimated")
	r.tiles([]tile{
		{"Time to detect", evidence.Duration(b.TimeToDetectSeconds), "from the breach to its detection"},
		{"Time to contain", contain, "from detection to the stop"},
		{"Cost incurred", b.CostIncurred(), "up to and including the breach"},
		{"Cost prevented", prevented, "estimate, see below"},
	})
	r.note("How the cost prevented is estimated. " + b.CostPreventedMethod)

	r.heading("Recommended actions")
	r.numbered(b.RecommendedActions)

	// What the badge, the header and the footer show already (the
	// remediation's status, the classification, the debrief's id) is not
	// said again: the debrief keeps to one page.
	r.heading("Key facts")
	r.fields([]field{
		{key: "Policy broken", value: b.PolicyViolated}, // whole: the badge may shorten it
		{key: "Breach", value: day(b.ViolationTime)},
		{key: "Detected", value: day(b.DetectionTime)},
		{key: "Contained", value: or(day(b.ContainmentTime), "not contained: the run was not stopped")},
		{key: "Remediation notes", value: or(b.RemediationNotes, "none yet"), maxLines: max(0, notesLines), more: " … (continued in the debrief's JSON export)"},
	})

	refs := []field{
		{key: "Incident", value: b.IncidentID, mono: true},
		{key: "Run", value: b.RunID, mono: true},
		{key: "Content hash", value: or(b.ContentHash, "not sealed"), mono: b.ContentHash != ""},
	}
	refs = append(refs, infoFields(info, false)...) // the ledger position: the ZIP's proof.json says it, see the note
	// The references and their note go together, on this page when they fit.
	st := smallFields
	r.need(subheadingH + st.height(len(refs)) + noteHeight(2, st.size))
	r.subheading("References")
	r.fieldsAs(refs, st)
	r.noteSized("Every figure here can be checked against the evidence bundle of the same incident. To verify the signed ZIP and its ledger proof: "+
		"runproof verify FILE.zip --key pub.pem", st.size)
	return r
}

// riskColors are the badge colours of the risk levels.
var riskColors = map[runproof.RiskLevel]rgb{
	runproof.RiskLow:      green,
	runproof.RiskMedium:   {196, 127, 0},
	runproof.RiskHigh:     {211, 84, 0},
	runproof.RiskCritical: {150, 20, 30},
}

// badge draws the risk level as a coloured box, with the policy broken and
// the remediation status beside it.
func (r *report) badge(b *evidence.ExecutiveDebriefBundle) {
	pdf := r.pdf
	c, ok := riskColors[b.RiskLevel]
	if !ok {
		c = muted
	}
	label := strings.ToUpper(string(b.RiskLevel)) + " RISK"
	y := pdf.GetY()
	r.fill(c)
	pdf.RoundedRect(margin, y, 46, 14, 2, "1234", "F")
	r.font(sans, "B", 14, rgb{255, 255, 255})
	pdf.SetXY(margin, y)
	pdf.CellFormat(46, 14, r.clean(label), "", 0, "C", false, 0, "")

	x := margin + 52
	r.font(sans, "", 9, muted)
	r.text(x, y+5, "Policy broken")
	r.text(x+60, y+5, "Remediation")
	r.font(sans, "B", 11, ink)
	r.text(x, y+11, r.fit(b.PolicyViolated, 58))
	r.text(x+60, y+11, strings.ReplaceAll(b.RemediationStatus, "_", " "))
	pdf.SetXY(margin, y+16.5)
}

// tile is one key metric.
type tile struct{ label, value, sub string }

// tiles draws the key metrics side by side.
func (r *report) tiles(ts []tile) {
	pdf := r.pdf
	const gap, h = 4.0, 22.0
	r.need(h + 4)
	w := (r.width() - gap*float64(len(ts)-1)) / float64(len(ts))
	y := pdf.GetY()
	for i, t := range ts {
		x := margin + float64(i)*(w+gap)
		r.fill(keyFill)
		pdf.Rect(x, y, w, h, "F")
		r.fill(accent)
		pdf.Rect(x, y, 1.2, h, "F")
		r.font(sans, "B", 8, muted)
		r.text(x+4, y+5, t.label)
		r.font(sans, "B", 15, ink)
		r.shrink(t.value, w-4, 8)
		r.text(x+4, y+13, r.fit(t.value, w-4))
		r.font(sans, "", 7, muted)
		r.text(x+4, y+18.5, r.fit(t.sub, w-4))
	}
	pdf.SetXY(margin, y+h+3)
}

// numbered writes a numbered list with hanging indents.
func (r *report) numbered(items []string) {
	pdf := r.pdf
	const indent = 9.0
	for i, it := range items {
		r.need(10)
		y := pdf.GetY()
		r.fill(accent)
		pdf.Circle(margin+2.6, y+2.5, 2.6, "F")
		r.font(sans, "B", 8.5, rgb{255, 255, 255})
		n := strconv.Itoa(i + 1)
		r.text(margin+2.6-pdf.GetStringWidth(n)/2, y+3.5, n)
		pdf.SetLeftMargin(margin + indent)
		pdf.SetXY(margin+indent, y)
		r.font(sans, "", r.set.body, ink)
		pdf.MultiCell(0, r.set.lead+0.2, r.clean(it), "", "L", false)
		pdf.SetLeftMargin(margin)
		pdf.Ln(1.5)
	}
	if len(items) == 0 {
		r.para("None.")
	}
}
