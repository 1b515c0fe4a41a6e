// Package pdfr writes bundles as PDF reports over an io.Writer: the
// engineer's evidence report, the auditor's SOC 2 report and the one- or
// two-page executive debrief.
//
// A report is a reading of its bundle, never its record: bundle.json holds
// every value in full, while a table cell here may be shortened with an
// ellipsis. Text is real text in embedded fonts (the Go fonts: Latin, Greek
// and Cyrillic; other characters, CJK say, are written as their code
// points, <U+65E5>), so it can be searched and copied.
//
// The same bundle and Info always give the same bytes: the document's dates
// are the bundle's created_at, never the clock. The document is built in
// memory and written out at the end, because every page states the page
// count; a 10 000-step run makes a few hundred pages.
package pdfr

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/text/unicode/norm"

	"github.com/runproof/runproof/internal/evidence"
)

// Info is what the report states beyond the bundle itself, and how it is
// written.
type Info struct {
	ExportID string // may be empty
	KeyID    string // signing key id, may be empty
	// Uncompressed leaves the pages' contents uncompressed, for a file
	// that is compressed whole (report.pdf in the ZIP bundle): one deflate
	// stream over the file costs less than one per page, and compresses
	// better.
	Uncompressed bool

	// viaText has fpdf's Text write every string, show writing none
	// itself: a test compares the two outputs.
	viaText bool
}

// Write renders a bundle as PDF to w. It gives up with ctx's error when
// ctx is done while it lays out a step timeline, the long part.
func Write(ctx context.Context, w io.Writer, bundle evidence.Bundle, info Info) error {
	var r *report
	switch b := bundle.(type) {
	case *evidence.EvidenceBundle:
		if b != nil {
			r = evidenceReport(ctx, b, info).end()
		}
	case *evidence.SOC2Bundle:
		if b != nil {
			r = soc2Report(ctx, b, info).end()
		}
	case *evidence.ExecutiveDebriefBundle:
		if b != nil {
			r = onePageDebrief(ctx, b, info)
		}
	}
	if r == nil {
		return fmt.Errorf("pdfr: cannot write a %T as PDF", bundle)
	}
	r.pdf.SetCompression(!info.Uncompressed)
	if err := r.pdf.Output(w); err != nil {
		return fmt.Errorf("pdfr: %w", err)
	}
	return nil
}

// end closes a report: with a note when some text was written as code
// points.
func (r *report) end() *report {
	if r.escaped {
		r.note("Characters the report's fonts do not have (Chinese, Japanese, Korean or Arabic script, emoji, say), or that draw as " +
			"nothing, are shown as their Unicode code points, as <U+4E2D>; bundle.json holds the text as it was sent.")
	}
	return r
}

// Page geometry, mm.
const (
	margin    = 15.0
	topMargin = 20.0
	bottom    = 18.0 // space kept for the footer
)

// Font families.
const (
	sans = "go"
	mono = "gomono"
)

type rgb struct{ r, g, b int }

// The palette.
var (
	accent    = rgb{31, 78, 121}
	ink       = rgb{33, 37, 41}
	muted     = rgb{108, 117, 125}
	ruleColor = rgb{206, 212, 218}
	gridColor = rgb{233, 236, 239}
	keyFill   = rgb{240, 243, 247}
	zebraFill = rgb{247, 249, 251}
	warnFill  = rgb{255, 244, 206}
	violFill  = rgb{253, 226, 226}
	inflFill  = rgb{255, 196, 112}
	goodFill  = rgb{218, 241, 222}
	greyFill  = rgb{233, 236, 239}
	red       = rgb{192, 57, 43}
	orange    = rgb{230, 126, 34}
	green     = rgb{39, 135, 75}
)

// a4 is the page size; pages are portrait except the step timeline.
var a4 = fpdf.SizeType{Wd: 210, Ht: 297}

// report is a document being built, with what every page shows.
type report struct {
	ctx       context.Context // a long timeline stops when it is done
	pdf       *fpdf.Fpdf
	landscape bool                // orientation of the pages added from now on
	cur       fontSpec            // the font set last; zero when unknown
	viaText   bool                // Info.viaText
	shown     map[string]*charSet // by family and style: what Text has written in the font (see show)
	buf       []byte              // scratch of show
	escaped   bool                // some text was written as code points (see clean)
	set       setting             // type sizes and spacing of the text
}

// A setting is the size and spacing of a report's text: paragraphs and
// lists (font size pt, line height mm), notes (pt), a heading's height
// (mm) and key-value blocks.
type setting struct {
	body, lead, note, headingH float64
	facts                      fieldStyle
}

var (
	// regular is how every report is set.
	regular = setting{body: 9.5, lead: 4.8, note: 8.5, headingH: 12, facts: regularFields}
	// tight sets a debrief closer, and a little smaller, when it would
	// otherwise run to a second page.
	tight = setting{body: 9, lead: 4.3, note: 8, headingH: 9.5,
		facts: fieldStyle{kw: 46, lh: 4.1, pad: 0.7, size: 8.5, keySize: 8, tint: true}}
	// tighter is tight a step further, for a debrief that says all it can.
	tighter = setting{body: 8.5, lead: 3.9, note: 7.5, headingH: 8,
		facts: fieldStyle{kw: 46, lh: 3.8, pad: 0.6, size: 8, keySize: 7.5, tint: true}}
)

// charSet is a set of characters.
type charSet struct {
	ascii [utf8.RuneSelf]bool
	other map[rune]bool
}

// fontSpec is a font and its colour. A table sets one per cell, and fpdf's
// SetFont is costly enough to show on a 10 000-step run.
type fontSpec struct {
	family, style string
	size          float64
	color         rgb
}

// pageInfo is what the header and footer of every page show.
type pageInfo struct {
	title    string // kind of report, e.g. "Evidence report"
	bundleID string
	hash     string // the bundle's content_hash
	class    string // debrief classification; "" for the other reports
	created  string // the bundle's created_at: the document's dates
}

func newReport(ctx context.Context, info Info, p pageInfo) *report {
	pdf := fpdf.NewCustom(&fpdf.InitType{OrientationStr: "P", UnitStr: "mm", Size: a4})
	r := &report{ctx: ctx, pdf: pdf, viaText: info.viaText, shown: map[string]*charSet{}, set: regular}
	// fpdf writes into the font bytes it is given while it subsets them
	// (hmtx of monospaced fonts): each document gets its own copy, which
	// keeps the Go fonts intact and the output deterministic.
	pdf.AddUTF8FontFromBytes(sans, "", bytes.Clone(goregular.TTF))
	pdf.AddUTF8FontFromBytes(sans, "B", bytes.Clone(gobold.TTF))
	pdf.AddUTF8FontFromBytes(sans, "I", bytes.Clone(goitalic.TTF))
	pdf.AddUTF8FontFromBytes(mono, "", bytes.Clone(gomono.TTF))
	pdf.AliasNbPages("{nb}")
	pdf.SetMargins(margin, topMargin, margin)
	pdf.SetAutoPageBreak(true, bottom)
	pdf.SetCellMargin(1)

	// A bundle always has a creation time; without one the epoch keeps the
	// output deterministic.
	at, err := time.Parse(time.RFC3339Nano, p.created)
	if err != nil {
		at = time.Unix(0, 0)
	}
	pdf.SetCreationDate(at.UTC())
	pdf.SetModificationDate(at.UTC())
	pdf.SetCatalogSort(true)
	pdf.SetTitle(clean(p.title+" "+p.bundleID), true)
	pdf.SetSubject(clean(p.title), true)
	pdf.SetCreator("runproof", false)
	pdf.SetProducer("runproof", false)

	pdf.SetHeaderFunc(func() { r.header(p) })
	pdf.SetFooterFunc(func() { r.footer(p) })
	return r
}

// header draws the page header: the report kind, the classification of a
// debrief, and the bundle id.
func (r *report) header(p pageInfo) {
	pdf := r.pdf
	w, _ := pdf.GetPageSize()
	const y = 11.0
	r.font(sans, "B", 8, accent)
	r.text(margin, y, "runproof")
	x := margin + pdf.GetStringWidth("runproof") + 2
	r.font(sans, "", 8, muted)
	r.text(x, y, p.title)
	if p.class != "" {
		r.font(sans, "B", 8, classColor(p.class))
		r.text((w-pdf.GetStringWidth(p.class))/2, y, p.class)
	}
	r.font(mono, "", 8, muted)
	id := r.clean(p.bundleID)
	r.text(w-margin-pdf.GetStringWidth(id), y, id)
	r.drawColor(ruleColor)
	pdf.SetLineWidth(0.2)
	pdf.Line(margin, y+2.5, w-margin, y+2.5)
	pdf.SetXY(margin, topMargin)
	r.cur = fontSpec{} // fpdf restores the page's font after the header
}

// footer draws "Page x of y", the classification of a debrief and the first
// 16 hex digits of the bundle's content_hash.
func (r *report) footer(p pageInfo) {
	pdf := r.pdf
	w, h := pdf.GetPageSize()
	y := h - 9
	r.drawColor(ruleColor)
	pdf.SetLineWidth(0.2)
	pdf.Line(margin, y-4, w-margin, y-4)
	r.font(sans, "", 8, muted)
	// Left-aligned: the page count replaces "{nb}" after layout.
	r.text(margin, y, fmt.Sprintf("Page %d of {nb}", pdf.PageNo()))
	if p.class != "" {
		r.font(sans, "B", 8, classColor(p.class))
		r.text((w-pdf.GetStringWidth(p.class))/2, y, p.class)
	}
	hash := "bundle hash " + shortHash(p.hash)
	r.font(mono, "", 8, muted)
	r.text(w-margin-pdf.GetStringWidth(hash), y, hash)
	r.cur = fontSpec{}
}

// shortHash is the first 16 hex digits of a "sha256:" digest, or "none".
func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if h == "" {
		return "none"
	}
	if len(h) > 16 {
		h = h[:16]
	}
	return h
}

func classColor(class string) rgb {
	switch class {
	case evidence.ClassPublic:
		return green
	case evidence.ClassInternal:
		return accent
	}
	return red
}

// addPage starts a page in the current orientation.
func (r *report) addPage() {
	if r.landscape {
		r.pdf.AddPageFormat("L", a4)
	} else {
		r.pdf.AddPageFormat("P", a4)
	}
}

// need starts a new page unless h mm are left on this one.
func (r *report) need(h float64) {
	_, ph := r.pdf.GetPageSize()
	if r.pdf.GetY()+h > ph-bottom {
		r.addPage()
	}
}

// linesLeft is how many lines of lh mm, under a padding of pad mm above
// and below, fit between the current position and the bottom margin.
func (r *report) linesLeft(lh, pad float64) int {
	_, ph := r.pdf.GetPageSize()
	return max(0, int((ph-bottom-r.pdf.GetY()-2*pad)/lh))
}

// width is the width between the margins.
func (r *report) width() float64 {
	w, _ := r.pdf.GetPageSize()
	return w - 2*margin
}

func (r *report) font(family, style string, size float64, c rgb) {
	f := fontSpec{family, style, size, c}
	if f == r.cur {
		return
	}
	r.cur = f
	r.pdf.SetFont(family, style, size)
	r.pdf.SetTextColor(c.r, c.g, c.b)
}

func (r *report) fill(c rgb)      { r.pdf.SetFillColor(c.r, c.g, c.b) }
func (r *report) drawColor(c rgb) { r.pdf.SetDrawColor(c.r, c.g, c.b) }

// text writes s with its baseline at (x, y).
func (r *report) text(x, y float64, s string) { r.show(x, y, r.clean(s)) }

// clean is clean(s), noting when it writes a character as its code point.
func (r *report) clean(s string) string {
	c := clean(s)
	r.noteEscapes(s, c, c)
	return c
}

// noteEscapes notes, for the closing note on code points, when shown (c,
// the clean form of s, or a part of it) holds code points clean wrote for
// characters of s the fonts lack.
func (r *report) noteEscapes(s, c, shown string) {
	if len(c) != len(s) && strings.Contains(shown, "<U+") {
		r.escaped = true
	}
}

// show writes s, clean, with its baseline at (x, y), byte for byte as
// fpdf's Text does. Text formats and encodes every string afresh and notes
// its characters, for the subset of the font it embeds: a report of 10 000
// steps draws 120 000 strings. Once Text has written every character of s
// in the current font, and when the text colour is the fill colour (Text
// sets the colour around the text otherwise), show writes the bytes itself.
func (r *report) show(x, y float64, s string) {
	pdf := r.pdf
	set := r.shown[r.cur.family+" "+r.cur.style]
	fr, fg, fb := pdf.GetFillColor()
	tr, tg, tb := pdf.GetTextColor()
	if r.viaText || r.cur.family == "" || fr != tr || fg != tg || fb != tb || !set.has(s) {
		pdf.Text(x, y, s)
		if r.cur.family != "" {
			if set == nil {
				set = &charSet{other: map[rune]bool{}}
				r.shown[r.cur.family+" "+r.cur.style] = set
			}
			set.add(s)
		}
		return
	}
	// Text's "BT %.2f %.2f Td (%s) Tj ET", the string in UTF-16BE with
	// fpdf's escapes.
	k := pdf.GetConversionRatio()
	_, h := pdf.GetPageSize()
	b := append(r.buf[:0], "BT "...)
	b = strconv.AppendFloat(b, x*k, 'f', 2, 64)
	b = append(b, ' ')
	b = strconv.AppendFloat(b, (h-y)*k, 'f', 2, 64)
	b = append(b, " Td ("...)
	for _, c := range s {
		for _, u := range [2]byte{byte(c >> 8), byte(c)} {
			switch u {
			case '\\', '(', ')':
				b = append(b, '\\', u)
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, u)
			}
		}
	}
	b = append(b, ") Tj ET"...)
	r.buf = b
	pdf.RawWriteStr(string(b))
}

// has reports whether the set holds every character of s; a nil set holds
// none.
func (cs *charSet) has(s string) bool {
	if cs == nil {
		return false
	}
	for _, c := range s {
		if c < utf8.RuneSelf && !cs.ascii[c] || c >= utf8.RuneSelf && (c > 0xFFFF || !cs.other[c]) {
			return false
		}
	}
	return true
}

func (cs *charSet) add(s string) {
	for _, c := range s {
		if c < utf8.RuneSelf {
			cs.ascii[c] = true
		} else {
			cs.other[c] = true
		}
	}
}

// title opens the first page with the report's title and a subtitle.
func (r *report) title(title, subtitle string) {
	r.addPage()
	pdf := r.pdf
	r.font(sans, "B", 22, accent)
	pdf.CellFormat(0, 11, r.clean(title), "", 1, "L", false, 0, "")
	if subtitle != "" {
		r.font(sans, "", 11, muted)
		pdf.MultiCell(0, 5.5, r.clean(subtitle), "", "L", false)
	}
	r.fill(accent)
	pdf.Rect(margin, pdf.GetY()+2, 30, 1.2, "F")
	pdf.Ln(6)
}

// heading starts a section, on a new page when little room is left.
func (r *report) heading(s string) {
	r.need(28)
	pdf := r.pdf
	const text = 7.0 // the title's line; the rest of the heading's height is space above and below
	pdf.Ln((r.set.headingH - text) / 2)
	r.font(sans, "B", 13, accent)
	pdf.CellFormat(0, text, r.clean(s), "", 1, "L", false, 0, "")
	r.drawColor(ruleColor)
	pdf.SetLineWidth(0.3)
	pdf.Line(margin, pdf.GetY()+0.5, margin+r.width(), pdf.GetY()+0.5)
	pdf.Ln((r.set.headingH - text) / 2)
}

// captioned starts a table under a subheading, kept together.
func (r *report) captioned(caption string, size float64, cols ...column) *table {
	return r.table(size, cols...).under(subheadingH, func() { r.subheading(caption) })
}

// subheadingH is the height of a subheading, mm.
const subheadingH = 6.5

// subheading names a part of a section.
func (r *report) subheading(s string) {
	r.need(28) // with the start of what it names: a table's header and first row

	r.font(sans, "B", 10, ink)
	r.pdf.CellFormat(0, subheadingH-0.5, r.clean(s), "", 1, "L", false, 0, "")
	r.pdf.Ln(0.5)
}

// para writes a wrapped paragraph.
func (r *report) para(s string) {
	r.font(sans, "", r.set.body, ink)
	r.pdf.MultiCell(0, r.set.lead, r.clean(s), "", "L", false)
	r.pdf.Ln(2)
}

// note writes a small wrapped remark.
func (r *report) note(s string) { r.noteSized(s, r.set.note) }

// noteSized writes a small wrapped remark in size pt.
func (r *report) noteSized(s string, size float64) {
	r.font(sans, "I", size, muted)
	r.pdf.MultiCell(0, size*noteLeading, r.clean(s), "", "L", false)
	r.pdf.Ln(noteAfter)
}

// A note's line height per point of its size, and the space after it, mm.
const noteLeading, noteAfter = 0.494, 1.5

// noteHeight is the height of a note of lines lines in size pt, mm.
func noteHeight(lines int, size float64) float64 {
	return float64(lines)*size*noteLeading + noteAfter
}

// code writes a remark, then commands, one a line, on a tinted block.
func (r *report) code(intro string, lines ...string) {
	pdf := r.pdf
	r.need(float64(len(lines))*4.6 + 18)
	r.note(intro)
	r.font(mono, "", 8, ink)
	r.fill(keyFill)
	pdf.CellFormat(0, 1.5, "", "", 1, "L", true, 0, "")
	for _, l := range lines {
		pdf.CellFormat(0, 4.6, "  "+r.clean(l), "", 1, "L", true, 0, "")
	}
	pdf.CellFormat(0, 1.5, "", "", 1, "L", true, 0, "")
	pdf.Ln(2.5)
}

// field is one row of a key-value block.
type field struct {
	key, value string
	mono       bool // digests and ids that are read character by character
	// maxLines, when over 0, cuts the value to as many lines, the last
	// ending with more, which says where the rest is.
	maxLines int
	more     string
}

// A fieldStyle is how a key-value block is drawn: the key column's width
// and the line height (mm), the padding of a row, the values' font size
// (monospaced ones a point smaller) and the keys', and whether the key
// column is tinted.
type fieldStyle struct {
	kw, lh, pad, size, keySize float64
	tint                       bool
}

var (
	// regularFields are a report's facts.
	regularFields = fieldStyle{kw: 46, lh: 4.5, pad: 1.1, size: 9, keySize: 8.5, tint: true}
	// smallFields are references to look up rather than read: ids and
	// digests under the debrief's one page.
	smallFields = fieldStyle{kw: 30, lh: 3.4, pad: 0.25, size: 7, keySize: 6.5}
)

// fields writes a two-column key-value block in the report's setting.
func (r *report) fields(rows []field) { r.fieldsAs(rows, r.set.facts) }

// fieldsAs writes a two-column key-value block; long values wrap. A row
// goes to the next page whole when it fits on one, and is split across
// pages when it does not (the key on its first part only).
func (r *report) fieldsAs(rows []field, st fieldStyle) {
	pdf := r.pdf
	vw := r.width() - st.kw
	for _, f := range rows {
		r.valueFont(f.mono, st)
		c := clean(f.value)
		lines := pdf.SplitText(c, vw)
		if len(lines) == 0 {
			lines = []string{""}
		}
		if f.maxLines > 0 && len(lines) > f.maxLines {
			lines = lines[:f.maxLines]
			lines[len(lines)-1] = cutToFit(lines[len(lines)-1], f.more, func(s string) bool { return len(pdf.SplitText(s, vw)) <= 1 })
		}
		r.noteEscapes(f.value, c, strings.Join(lines, "\n")) // of what is shown
		key := r.clean(f.key)
		for len(lines) > 0 {
			if left := r.linesLeft(st.lh, st.pad); left < len(lines) && (left < 3 || len(lines) <= r.linesPerPage(st.lh, st.pad)) {
				r.addPage()
			}
			n := min(len(lines), r.linesLeft(st.lh, st.pad))
			r.fieldPart(key, lines[:n], f.mono, st)
			lines, key = lines[n:], ""
		}
	}
	pdf.Ln(st.after())
}

// after is the space below a key-value block, mm.
func (st fieldStyle) after() float64 { return st.lh * 2 / 3 }

// height is the height of a key-value block of rows one line each, mm.
func (st fieldStyle) height(rows int) float64 {
	return float64(rows)*(st.lh+2*st.pad) + st.after()
}

// valueFont sets the font of a field's value.
func (r *report) valueFont(monospaced bool, st fieldStyle) {
	if monospaced {
		r.font(mono, "", st.size-1, ink)
	} else {
		r.font(sans, "", st.size, ink)
	}
}

// fieldPart draws the lines of a field's value that go on this page, and
// its key when given.
func (r *report) fieldPart(key string, lines []string, monospaced bool, st fieldStyle) {
	pdf := r.pdf
	vw := r.width() - st.kw
	h := float64(len(lines))*st.lh + 2*st.pad
	y := pdf.GetY()
	if st.tint {
		r.fill(keyFill)
		pdf.Rect(margin, y, st.kw, h, "F")
	}
	r.valueFont(monospaced, st)
	for i, l := range lines {
		pdf.SetXY(margin+st.kw, y+st.pad+float64(i)*st.lh)
		pdf.CellFormat(vw, st.lh, l, "", 0, "L", false, 0, "")
	}
	if key != "" {
		r.font(sans, "B", st.keySize, muted)
		pdf.SetXY(margin, y+st.pad)
		pdf.CellFormat(st.kw, st.lh, key, "", 0, "L", false, 0, "")
	}
	r.drawColor(gridColor)
	pdf.SetLineWidth(0.2)
	pdf.Line(margin, y+h, margin+r.width(), y+h)
	pdf.SetXY(margin, y+h)
}

// linesPerPage is how many lines of lh mm, padded by pad mm, a page holds
// below its header.
func (r *report) linesPerPage(lh, pad float64) int {
	_, ph := r.pdf.GetPageSize()
	return int((ph - bottom - topMargin - 2*pad) / lh)
}

// clean makes s safe for the fonts: control characters become spaces
// (newlines stay, for wrapping), invalid UTF-8 becomes U+FFFD, and a
// character the fonts have no glyph for (CJK, say) is written as its code
// point, <U+65E5>, and characters that follow one another as a group of
// them, <U+65E5 U+672C>, where a line may break between code points but
// not within one: each would be measured as nothing and drawn over the
// margins, and a reader still tells one name from another. Letters and
// their accents sent apart (e and U+0301, as macOS writes é) are first
// composed into the one character the fonts have. A format character,
// which draws as nothing (a soft hyphen, a zero-width space), is written as
// its code point too: "tool:sh<U+00AD>ell" is not "tool:shell".
func clean(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' || c >= 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	s = norm.NFC.String(s)
	has := glyphs()
	var b strings.Builder
	b.Grow(len(s))
	group := false // within a group of code points, "<U+76EE U+6807>"
	for _, c := range s {
		if escape := c > 0xFFFF || c != '\n' && c != utf8.RuneError && !unicode.IsControl(c) && (!has[c] || unicode.Is(unicode.Cf, c)); escape {
			if group {
				b.WriteByte(' ') // where a line may break, rather than within a code point
			} else {
				b.WriteByte('<')
			}
			fmt.Fprintf(&b, "%U", c)
			group = true
			continue
		}
		if group {
			b.WriteByte('>')
			group = false
		}
		switch {
		case c == '\n':
			b.WriteRune(c)
		case unicode.IsControl(c):
			b.WriteByte(' ')
		default: // U+FFFD too, which stands for invalid UTF-8
			b.WriteRune(c)
		}
	}
	if group {
		b.WriteByte('>')
	}
	return b.String()
}

// glyphs says which characters of the Basic Multilingual Plane the fonts
// have. The four Go fonts have the same ones: the regular's are read.
var glyphs = sync.OnceValue(func() []bool {
	has := make([]bool, 0x10000)
	f, err := sfnt.Parse(goregular.TTF)
	if err != nil {
		panic(fmt.Sprintf("pdfr: the embedded Go font does not parse: %v", err))
	}
	var buf sfnt.Buffer
	for r := range rune(len(has)) {
		g, err := f.GlyphIndex(&buf, r)
		has[r] = err == nil && g != 0
	}
	return has
})

// oneLine makes s one line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// shrink makes the current font smaller, by half points down to least,
// until s fits in w mm, cell margins included: a figure is written
// smaller rather than cut.
func (r *report) shrink(s string, w, least float64) {
	f := r.cur
	for f.size > least && r.pdf.GetStringWidth(s) > w-2*r.pdf.GetCellMargin() {
		f.size -= 0.5
		r.font(f.family, f.style, f.size, f.color)
	}
}

// fit shortens s with an ellipsis so that it fits in w mm in the current
// font, cell margins included.
func (r *report) fit(s string, w float64) string {
	pdf := r.pdf
	s = r.clean(s) // measured as it is drawn
	w -= 2 * pdf.GetCellMargin()
	if pdf.GetStringWidth(s) <= w {
		return s
	}
	// The longest prefix that fits with the ellipsis, rune by rune in the
	// font's units, as GetStringWidth counts them.
	_, size := pdf.GetFontSize()
	w -= pdf.GetStringWidth("…")
	units, end := 0, 0
	for end < len(s) {
		_, n := utf8.DecodeRuneInString(s[end:])
		if units += pdf.GetStringSymbolWidth(s[end : end+n]); float64(units)*size/1000 > w {
			break
		}
		end += n
	}
	// A group closed adds its ">": back off until that fits too.
	for {
		if out := closeGroup(s[:end], s[end:]); end == 0 || pdf.GetStringWidth(out) <= w {
			return out + "…"
		}
		_, n := utf8.DecodeLastRuneInString(s[:end])
		end -= n
	}
}

// cutToFit cuts line back until, with more after it, it fits: between
// words when it can, and never inside a group of code points.
func cutToFit(line, more string, fits func(string) bool) string {
	for end := len(line); ; {
		cut, rest := line[:end], line[end:]
		if i := strings.LastIndex(cut, " "); rest != "" && rest[0] != ' ' && i > 0 { // between words, not within one
			cut, rest = cut[:i], line[i:]
		}
		if out := closeGroup(cut, rest) + more; end == 0 || fits(out) {
			return out
		}
		_, n := utf8.DecodeLastRuneInString(line[:end])
		end -= n
	}
}

// closeGroup ends cut, a prefix of a text whose rest follows, outside a
// group of code points (<U+7981 U+6B62>, as clean writes what the fonts
// lack): a group cut short keeps its whole code points, closed, or goes
// whole when none is.
func closeGroup(cut, rest string) string {
	g := strings.LastIndex(cut, "<")
	if g < 0 || strings.Contains(cut[g:], ">") || !strings.HasPrefix(cut[g:]+rest, "<U+") {
		return strings.TrimRight(cut, " ")
	}
	group := cut[g:]
	if rest != "" && rest[0] != ' ' && rest[0] != '>' { // the last code point is cut short
		group = group[:max(0, strings.LastIndex(group, " "))]
	}
	if group = strings.TrimRight(group, " "); len(group) <= len("<U+") {
		return strings.TrimRight(cut[:g], " ")
	}
	return cut[:g] + group + ">"
}
