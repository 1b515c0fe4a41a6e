package pdfr

// column is one column of a table.
type column struct {
	title string
	w     float64 // relative width: the table spans the page
	align string  // "L", "R" or "C"
	wrap  bool    // long text wraps; otherwise it is shortened with an ellipsis
	mono  bool
}

// style is how one row is drawn.
type style struct {
	fill  *rgb   // row background; nil: alternate stripes
	bold  bool   // bold text
	cells []*rgb // optional background of single cells, by column
}

// table draws rows under a header that is repeated on every page, drawn
// with the first row.
type table struct {
	r     *report
	cols  []column
	ws    []float64 // widths, mm
	size  float64   // font size, pt
	lh    float64   // line height, mm
	wraps bool      // some column wraps, so rows differ in height
	rows  int       // rows drawn, for the stripes
	lines [][]string
	lead  func()  // what the table goes under (see under)
	leadH float64 // its height, mm
}

// table starts a table at the current position, in size pt.
func (r *report) table(size float64, cols ...column) *table {
	t := &table{r: r, cols: cols, ws: make([]float64, len(cols)), size: size, lh: size * 0.52, lines: make([][]string, len(cols))}
	var sum float64
	for _, c := range cols {
		sum += c.w
		t.wraps = t.wraps || c.wrap
	}
	for i, c := range cols {
		t.ws[i] = c.w * r.width() / sum
	}
	return t
}

// under has the table drawn under what draw draws, h mm high: a heading
// that names it. Both are drawn with the table's first row, on the page
// that row starts on: a heading or header alone at a page's foot reads
// as an empty table.
func (t *table) under(h float64, draw func()) *table {
	t.lead, t.leadH = draw, h
	return t
}

// start draws what the table goes under and its header, on a new page
// unless they fit on this one with the first n lines of the first row (a
// row that fits on a page is not split).
func (t *table) start(n int, pad float64) {
	r := t.r
	if n > r.linesPerPage(t.lh, pad)-2 {
		n = 3
	}
	r.need(t.leadH + t.headH() + float64(n)*t.lh + 2*pad)
	if t.lead != nil {
		t.lead()
	}
	t.head()
}

// headH is the height of the header row, mm.
func (t *table) headH() float64 { return t.lh + 1.6 }

// head draws the header row.
func (t *table) head() {
	r, pdf := t.r, t.r.pdf
	r.fill(accent)
	h := t.headH()
	for i, c := range t.cols {
		r.font(sans, "B", t.size, rgb{255, 255, 255})
		r.shrink(c.title, t.ws[i], t.size-1.5) // a title a little smaller rather than cut
		pdf.CellFormat(t.ws[i], h, r.fit(c.title, t.ws[i]), "", 0, c.align, true, 0, "")
	}
	pdf.Ln(h)
}

// row draws one row, on a new page (under a new header) when it does not
// fit on this one; a row higher than a page is split across pages, the
// cells that do not wrap on its first part only.
func (t *table) row(cells []string, s style) {
	r, pdf := t.r, t.r.pdf
	if pdf.Err() { // nothing is drawn any more, and no line would fit
		return
	}
	n := 1
	if t.wraps {
		// Only wrapping columns make a row higher than one line.
		for i, c := range t.cols {
			if c.wrap {
				t.setFont(c, s.bold)
				t.lines[i] = pdf.SplitText(r.clean(cells[i]), t.ws[i])
				n = max(n, len(t.lines[i]))
			}
		}
	}
	const pad = 0.4
	if t.rows == 0 {
		t.start(n, pad)
	}
	stripe := t.rows%2 == 1
	t.rows++
	for first := true; ; first = false {
		if left := r.linesLeft(t.lh, pad); left < n && (left < 3 || n <= r.linesPerPage(t.lh, pad)-2) {
			r.addPage()
			t.head()
		}
		k := min(n, r.linesLeft(t.lh, pad))
		t.part(cells, s, stripe, first, k, pad)
		if k == n {
			return
		}
		for i, l := range t.lines {
			t.lines[i] = l[min(k, len(l)):]
		}
		n -= k
	}
}

// part draws the first k lines of a row that are left, its cells that do
// not wrap when first.
func (t *table) part(cells []string, s style, stripe, first bool, k int, pad float64) {
	r, pdf := t.r, t.r.pdf
	h := float64(k)*t.lh + 2*pad
	x, y := margin, pdf.GetY()
	filled := true
	switch {
	case s.fill != nil:
		r.fill(*s.fill)
		pdf.Rect(x, y, r.width(), h, "F")
	case stripe:
		r.fill(zebraFill)
		pdf.Rect(x, y, r.width(), h, "F")
	default:
		filled = false
	}
	for i := range t.cols {
		if i < len(s.cells) && s.cells[i] != nil {
			r.fill(*s.cells[i])
			pdf.Rect(x+t.offset(i), y, t.ws[i], h, "F")
			filled = true
		}
	}
	if filled {
		// Text takes the fill colour in PDF: with both the same, fpdf
		// writes each cell's text without saving and restoring the colour.
		r.fill(ink)
	}
	// The columns in the font set last go first, so that a table with a
	// monospaced column changes fonts once a row, not twice.
	cur := r.cur
	for pass := range 2 {
		for i, c := range t.cols {
			if (t.fontOf(c, s.bold) == cur) == (pass == 0) && (first || c.wrap) {
				t.cell(i, cells[i], k, x+t.offset(i), y+pad, s.bold)
			}
		}
	}
	r.drawColor(gridColor)
	pdf.SetLineWidth(0.15)
	pdf.Line(margin, y+h, margin+r.width(), y+h)
	pdf.SetXY(margin, y+h)
}

// cell writes the text of column i, at most k lines of it, its top-left
// corner at (x, y).
func (t *table) cell(i int, text string, k int, x, y float64, bold bool) {
	r, c := t.r, t.cols[i]
	t.setFont(c, bold)
	lines := t.lines[i][:min(k, len(t.lines[i]))]
	if !c.wrap {
		lines = []string{oneLine(r.clean(text))}
	}
	_, size := r.pdf.GetFontSize()
	for j, l := range lines {
		if !c.wrap {
			if c.align == "R" { // figures
				r.shrink(l, t.ws[i], 4)
			}
			l = r.fit(l, t.ws[i])
		}
		if l == "" {
			continue
		}
		// Where fpdf's CellFormat would put it: the cell margin inside
		// the aligned edge, the baseline below the line's middle.
		dx := r.pdf.GetCellMargin()
		switch c.align {
		case "R":
			dx = t.ws[i] - dx - r.pdf.GetStringWidth(l)
		case "C":
			dx = (t.ws[i] - r.pdf.GetStringWidth(l)) / 2
		}
		r.show(x+dx, y+float64(j)*t.lh+0.5*t.lh+0.3*size, l)
	}
}

// offset is where column i starts, from the left margin.
func (t *table) offset(i int) float64 {
	var x float64
	for _, w := range t.ws[:i] {
		x += w
	}
	return x
}

// fontOf is the font of a column's text.
func (t *table) fontOf(c column, bold bool) fontSpec {
	switch {
	case c.mono:
		return fontSpec{mono, "", t.size, ink}
	case bold:
		return fontSpec{sans, "B", t.size, ink}
	}
	return fontSpec{sans, "", t.size, ink}
}

func (t *table) setFont(c column, bold bool) {
	f := t.fontOf(c, bold)
	t.r.font(f.family, f.style, f.size, f.color)
}

// end leaves some room after the table, drawn with its header (and what
// it goes under) when it has no row.
func (t *table) end() {
	if t.rows == 0 {
		t.start(0, 0)
	}
	t.r.pdf.Ln(4)
}
