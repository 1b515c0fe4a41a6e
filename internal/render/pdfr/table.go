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

// table draws rows under a header that is repeated on every page.
type table struct {
	r    *report
	cols []column
	ws   []float64 // widths, mm
	size float64   // font size, pt
	lh   float64   // line height, mm
	rows int       // rows drawn, for the stripes
}

// table starts a table at the current position, in size pt.
func (r *report) table(size float64, cols ...column) *table {
	t := &table{r: r, cols: cols, ws: make([]float64, len(cols)), size: size, lh: size * 0.52}
	var sum float64
	for _, c := range cols {
		sum += c.w
	}
	for i, c := range cols {
		t.ws[i] = c.w * r.width() / sum
	}
	r.need(3 * t.lh)
	t.head()
	return t
}

// head draws the header row.
func (t *table) head() {
	r, pdf := t.r, t.r.pdf
	r.font(sans, "B", t.size, rgb{255, 255, 255})
	r.fill(accent)
	h := t.lh + 1.6
	for i, c := range t.cols {
		pdf.CellFormat(t.ws[i], h, r.fit(c.title, t.ws[i]), "", 0, c.align, true, 0, "")
	}
	pdf.Ln(h)
}

// row draws one row, on a new page (under a new header) when it does not
// fit on this one.
func (t *table) row(cells []string, s style) {
	r, pdf := t.r, t.r.pdf
	lines := make([][]string, len(cells))
	n := 1
	for i, c := range t.cols {
		t.setFont(c, s.bold)
		text := clean(cells[i])
		if c.wrap {
			lines[i] = pdf.SplitText(text, t.ws[i])
		} else {
			lines[i] = []string{r.fit(oneLine(text), t.ws[i])}
		}
		n = max(n, len(lines[i]))
	}
	const pad = 0.4
	h := float64(n)*t.lh + 2*pad
	if _, ph := pdf.GetPageSize(); pdf.GetY()+h > ph-bottom {
		r.addPage()
		t.head()
	}
	x, y := margin, pdf.GetY()
	switch {
	case s.fill != nil:
		r.fill(*s.fill)
		pdf.Rect(x, y, r.width(), h, "F")
	case t.rows%2 == 1:
		r.fill(zebraFill)
		pdf.Rect(x, y, r.width(), h, "F")
	}
	t.rows++
	for i, c := range t.cols {
		if i < len(s.cells) && s.cells[i] != nil {
			r.fill(*s.cells[i])
			pdf.Rect(x, y, t.ws[i], h, "F")
		}
		t.setFont(c, s.bold)
		for j, l := range lines[i] {
			pdf.SetXY(x, y+pad+float64(j)*t.lh)
			pdf.CellFormat(t.ws[i], t.lh, l, "", 0, c.align, false, 0, "")
		}
		x += t.ws[i]
	}
	r.drawColor(gridColor)
	pdf.SetLineWidth(0.15)
	pdf.Line(margin, y+h, margin+r.width(), y+h)
	pdf.SetXY(margin, y+h)
}

func (t *table) setFont(c column, bold bool) {
	switch {
	case c.mono:
		t.r.font(mono, "", t.size, ink)
	case bold:
		t.r.font(sans, "B", t.size, ink)
	default:
		t.r.font(sans, "", t.size, ink)
	}
}

// end leaves some room after the table.
func (t *table) end() { t.r.pdf.Ln(4) }
