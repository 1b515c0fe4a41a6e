package pdfr

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// write renders bundle to dir/name (and to $RUNPROOF_PDF_OUT/name when set)
// and returns the file's path.
func write(t *testing.T, name string, bundle evidence.Bundle, info Info) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, bundle, info); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatalf("%s does not start like a PDF: %q", name, buf.Bytes()[:min(buf.Len(), 16)])
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("RUNPROOF_PDF_OUT"); out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// need returns the path of a command line tool, or skips the test loudly.
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("SKIPPED: %s is not installed, so the PDF is not checked (apt-get install qpdf poppler-utils)", name)
	}
	return p
}

// check runs qpdf --check on the file and returns its text, one string
// per page, as pdftotext extracts it.
func check(t *testing.T, path string) []string {
	t.Helper()
	qpdf, pdftotext := need(t, "qpdf"), need(t, "pdftotext")
	if out, err := exec.Command(qpdf, "--check", path).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --check %s: %v\n%s", filepath.Base(path), err, out)
	}
	out, err := exec.Command(pdftotext, "-enc", "UTF-8", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext %s: %v", filepath.Base(path), err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\f"), "\f")
}

func TestReports(t *testing.T) {
	src := costRun(t, "agent-research", 6, 3)
	ev, soc2, debrief := bundles(t, src)
	info := Info{ExportID: "0195a3c5-0000-7000-8000-000000000042", KeyID: "key-2026-03"}
	for _, c := range []struct {
		name   string
		bundle evidence.Bundle
		hash   string
		want   []string
	}{
		{"evidence.pdf", ev, ev.ContentHash, []string{"Evidence report", "threshold 100 cents, actual 120 cents", "Inflection step", "Policies exceeded (1)",
			"runproof verify FILE.zip --key pub.pem", `jq -r '.files[] | "\(.sha256)`, `\(.name)"' manifest.json | sha256sum -c`, "openssl pkeyutl -verify", info.ExportID, "see proof.json", "key-2026-03"}},
		{"soc2.pdf", soc2, soc2.ContentHash, []string{"SOC 2 evidence report", "CC7.2", "Incident Response", "DEMONSTRATED", "PARTIAL",
			"Attestation statement", "Reviewer", "pending", soc2.EvidenceDigest, "Step timeline"}},
		{"debrief.pdf", debrief, debrief.ContentHash, []string{"Executive debrief", "MEDIUM RISK", "Time to detect", "Cost incurred", "$1.20",
			"Cost prevented", "CONFIDENTIAL", "Make the agent honour stop decisions"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pages := check(t, write(t, c.name, c.bundle, info))
			text := strings.Join(pages, "\n")
			for _, want := range append([]string{src.Run.ID, "cost cap", c.hash}, c.want...) {
				if !strings.Contains(text, want) {
					t.Errorf("the text of %s lacks %q", c.name, want)
				}
			}
			for i, p := range pages {
				for _, want := range []string{fmt.Sprintf("Page %d of %d", i+1, len(pages)), "bundle hash " + c.hash[7:23]} {
					if !strings.Contains(p, want) {
						t.Errorf("page %d of %s lacks %q", i+1, c.name, want)
					}
				}
			}
		})
	}
}

func TestDebriefIsShort(t *testing.T) {
	_, _, debrief := bundles(t, costRun(t, "agent-research", 6, 3))
	pages := check(t, write(t, "debrief-short.pdf", debrief, Info{ExportID: "0195a3c5-0000-7000-8000-000000000042", KeyID: "key-2026-03"}))
	if len(pages) != 1 {
		t.Errorf("the debrief has %d pages, want one", len(pages))
	}
	for i, p := range pages {
		if !strings.Contains(p, "CONFIDENTIAL") || !strings.Contains(p, debrief.BundleID) {
			t.Errorf("page %d lacks the classification or the bundle id", i+1)
		}
	}
}

// TestDebriefKeepsToOnePage: a debrief whose texts run as long as they
// may (a prepared_for and a policy name of 200 bytes, partly in a script
// the fonts lack, steps sent after the stop, remediation notes of 2000
// bytes) is set tight, and cuts the notes to what fits, as they would
// break into lines (at their own line breaks, between words, within a
// word too long for a line), saying where the rest is; shorter notes stay
// whole.
func TestDebriefKeepsToOnePage(t *testing.T) {
	const mark = "… (continued in the debrief's JSON export)"
	long := strings.Repeat("The team lowered the cap and added a review of every tool call. ", 40)[:runproof.MaxNotes]
	listed := strings.Repeat("Step done.\n", 190)[:runproof.MaxNotes]
	url := "https://example.com/" + strings.Repeat("a", 1900) + " is the fix."
	for _, c := range []struct {
		name, notes string
		want        []string
	}{
		{"long notes", long, []string{"The team lowered the cap", mark}},
		{"notes of lines", listed, []string{"Step done. " + mark}},
		{"notes of one long word", url, []string{"https://example.com/aaaa", mark}},
		{"notes in a script the fonts lack", strings.Repeat("研", runproof.MaxNotes/3), []string{"<U+7814 U+7814 U+7814", mark, "shown as their Unicode code points"}},
		{"short notes", "Cap lowered to $0.50 a run.", []string{"Cap lowered to $0.50 a run."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := costRun(t, "agent-research", 6, 3) // two steps after the stop
			src.Incident.PolicyName = strings.Repeat("cost cap of the research agents 研究 ", 6)[:runproof.MaxName]
			src.Incident.RemediationStatus, src.Incident.RemediationNotes = "in_progress", c.notes
			o := options()
			o.PreparedFor = strings.Repeat("Chief Technology Officer and Board ", 6)[:runproof.MaxName]
			d, err := evidence.BuildExecutiveDebrief(src, o)
			if err != nil {
				t.Fatal(err)
			}
			pages := check(t, write(t, "debrief-long.pdf", &d, Info{ExportID: "0195a3c5-0000-7000-8000-000000000042", KeyID: "key-2026-03"}))
			text := strings.Join(strings.Fields(strings.Join(pages, " ")), " ")
			if len(pages) != 1 {
				t.Errorf("the debrief has %d pages, want one", len(pages))
			}
			for _, want := range append(c.want, "<U+7814 U+7A76>", "Signing key", "runproof verify FILE.zip") {
				if !strings.Contains(text, want) {
					t.Errorf("the debrief lacks %q", want)
				}
			}

		})
	}
}

// TestOneStepChart: the chart of a run of one step draws its total level,
// the step in the middle, with no axis label for a step that does not
// exist.
func TestOneStepChart(t *testing.T) {
	ev, _, _ := bundles(t, costRun(t, "agent-research", 1, 0))
	pages := check(t, write(t, "one-step.pdf", ev, Info{}))
	text := strings.Join(pages, "\f")
	_, chart, _ := strings.Cut(text, "Cumulative tokens")
	chart, _, _ = strings.Cut(chart, "step index")
	// Its last labels: the y axis's 0, then the x axis's only one, step 0.
	if fields := strings.Fields(chart); len(fields) < 2 || !slices.Equal(fields[len(fields)-2:], []string{"0", "0"}) ||
		slices.Contains(fields, "1") || slices.Contains(fields, "-0") {
		t.Errorf("the tokens panel's labels: %q", fields)
	}
}

// TestStepsAfterTheStop: the timeline marks the steps recorded after the
// run was stopped, and not the breaking one.
func TestStepsAfterTheStop(t *testing.T) {
	ev, _, _ := bundles(t, costRun(t, "agent-research", 6, 3)) // steps 4 and 5 after the stop
	text := strings.Join(check(t, write(t, "after-stop.pdf", ev, Info{})), "\n")
	if n := strings.Count(text, "violation "+afterStopMark); n != 2 || !strings.Contains(text, afterStopMark+" sent after the agent was told to stop") {
		t.Errorf("%d steps marked as sent after the stop, want 2; or no legend:\n%s", n, text)
	}
	// The same steps begun with the breaking one were under way at the
	// stop: no row is marked, and the mark is not explained. One dated
	// before it, but over by then, is marked.
	var steps []evidence.TraceStepEvidence
	for s, err := range ev.Steps.All() {
		if err != nil {
			t.Fatal(err)
		}
		if s.StepIndex > *ev.ViolationStepIndex {
			s.Timestamp = ev.ViolationTimestamp
		}
		steps = append(steps, s)
	}
	relist := func() {
		var err error
		if ev.Steps, err = evidence.StepListOf(steps...); err != nil {
			t.Fatal(err)
		}
	}
	relist()
	text = strings.Join(check(t, write(t, "under-way.pdf", ev, Info{})), "\n")
	if strings.Contains(text, afterStopMark) {
		t.Errorf("steps under way at the stop marked, or the mark explained:\n%s", text)
	}
	steps[len(steps)-1].Timestamp = steps[0].Timestamp
	relist()
	text = strings.Join(check(t, write(t, "back-dated.pdf", ev, Info{})), "\n")
	if n := strings.Count(text, "violation "+afterStopMark); n != 1 || !strings.Contains(text, afterStopMark+" sent after the agent was told to stop") {
		t.Errorf("%d steps marked, want the one dated before the breaking step and over by then:\n%s", n, text)
	}
}

func TestLongTracePaginates(t *testing.T) {
	ev, _, _ := bundles(t, costRun(t, "agent-research", 1200, 800))
	pages := check(t, write(t, "evidence-1200.pdf", ev, Info{}))
	if len(pages) < 10 {
		t.Fatalf("1200 steps on %d pages", len(pages))
	}
	var tables int
	for i, p := range pages {
		if !strings.Contains(p, ev.BundleID) {
			t.Errorf("page %d lacks the header with the bundle id", i+1)
		}
		if strings.Contains(p, "Cum. tokens") {
			tables++
		}
	}
	if tables < len(pages)-4 {
		t.Errorf("the step table's header is on %d of %d pages", tables, len(pages))
	}
	text := strings.Join(pages, "\n")
	for _, want := range []string{"2026-03-10 14:20:00.000000", "2026-03-10 14:13:21.000000", "1,200"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q (the last step and the inflection step)", want)
		}
	}
}

func TestUnicodeNames(t *testing.T) {
	const agent = "Agent Ünïcødé Ελλάδα Москва"
	src := costRun(t, agent, 5, 2)
	src.Run.Goal = "Résumé «naïve» — Привет, Καλημέρα, cafe\u0301" // the last é as macOS writes it
	ev, _, _ := bundles(t, src)
	text := strings.Join(check(t, write(t, "unicode.pdf", ev, Info{})), "\n")
	for _, want := range []string{agent, "Résumé «naïve» — Привет, Καλημέρα, café"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q", want)
		}
	}
}

// TestCodePoints: text the fonts lack is written as code points that a
// line never breaks within, nor an ellipsis cuts, measured as drawn so
// that it stays on the page, and the report says what they are.
func TestCodePoints(t *testing.T) {
	const name = "禁止执行 shell 命令 — حظر أوامر الشل 🚫"
	src := simulate(t, run{agent: "代理", goal: strings.Repeat("总结董事会的季度销售报告 ", 12),
		policies: []runproof.Policy{pol(name, runproof.PolicyCostLimit, "70", runproof.ActionStop)},
		steps:    4, stepType: "llm:模型", in: 400, out: 150, costMicro: 30 * runproof.MicrocentsPerCent, durMicro: 1_250_500})
	ev, _, debrief := bundles(t, src)
	// A group of code points, whole or cut short with an ellipsis; a line
	// may break between two.
	codePoint := regexp.MustCompile(`<U\+[0-9A-F]{4,5}(?:\s+U\+[0-9A-F]{4,5})*(?:>|…)`)
	for _, c := range []struct {
		name   string
		bundle evidence.Bundle
	}{{"codepoints-evidence.pdf", ev}, {"codepoints-debrief.pdf", debrief}} {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, c.name, c.bundle, Info{})
			text := strings.Join(check(t, path), "\n")
			if !strings.Contains(strings.Join(strings.Fields(text), " "), "shown as their Unicode code points") {
				t.Error("the report does not say what <U+…> stands for")
			}
			if rest := codePoint.ReplaceAllString(text, ""); strings.Contains(rest, "U+") {
				i := strings.Index(rest, "U+")
				t.Errorf("a code point is cut: %q", rest[max(0, i-40):min(len(rest), i+40)])
			}
			// Every word within its page's margins.
			out, err := exec.Command(need(t, "pdftotext"), "-bbox", path, "-").Output()
			if err != nil {
				t.Fatal(err)
			}
			var right float64
			for _, m := range regexp.MustCompile(`<page width="([0-9.]+)"|xMax="([0-9.]+)"[^>]*>([^<]*)<`).FindAllStringSubmatch(string(out), -1) {
				if m[1] != "" {
					w, _ := strconv.ParseFloat(m[1], 64)
					right = w - margin*72/25.4 + 1
				} else if x, _ := strconv.ParseFloat(m[2], 64); x > right {
					t.Errorf("%q ends at %.1f pt, in the right margin or off the page", m[3], x)
				}
			}
		})
	}
	_, _, latin := bundles(t, costRun(t, "agent-research", 6, 3))
	if text := strings.Join(check(t, write(t, "latin-debrief.pdf", latin, Info{})), "\n"); strings.Contains(text, "code points") {
		t.Error("a report without code points explains them")
	}
}

func TestDeterministic(t *testing.T) {
	ev, soc2, debrief := bundles(t, costRun(t, "Agent Ünïcødé", 300, 200))
	fonts := sha256.Sum256(slices.Concat(goregular.TTF, gobold.TTF, goitalic.TTF, gomono.TTF))
	defer func() {
		if sha256.Sum256(slices.Concat(goregular.TTF, gobold.TTF, goitalic.TTF, gomono.TTF)) != fonts {
			t.Error("rendering changed the bytes of the Go fonts")
		}
	}()
	for _, b := range []evidence.Bundle{ev, soc2, debrief} {
		var one, two bytes.Buffer
		if err := Write(context.Background(), &one, b, Info{}); err != nil {
			t.Fatal(err)
		}
		if err := Write(context.Background(), &two, b, Info{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(one.Bytes(), two.Bytes()) {
			t.Errorf("%T: two renderings differ", b)
		}
		if !bytes.Contains(one.Bytes(), []byte("/CreationDate (D:20260310150000")) {
			t.Errorf("%T: the creation date is not the bundle's", b)
		}
	}
}

// TestShowAsText checks that the text show writes itself is byte for byte
// the text fpdf's Text writes.
func TestShowAsText(t *testing.T) {
	src := costRun(t, "Agent Ünïcødé", 300, 200)
	editSteps(t, &src, func(steps []runproof.Step) {
		for i := 3; i < 6; i++ { // seen once by Text, then written by show
			steps[i].StepType = "tool:(paren) back\\slash \u2028\r «quoted» " + strings.Repeat("long ", 20)
		}
	})
	ev, soc2, debrief := bundles(t, src)
	for _, b := range []evidence.Bundle{ev, soc2, debrief} {
		var direct, text bytes.Buffer
		if err := Write(context.Background(), &direct, b, Info{Uncompressed: true}); err != nil {
			t.Fatal(err)
		}
		if err := Write(context.Background(), &text, b, Info{Uncompressed: true, viaText: true}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(direct.Bytes(), text.Bytes()) {
			t.Errorf("%T: show writes other bytes than Text", b)
		}
	}
}

// TestUncompressed checks that a report with its pages left uncompressed,
// as the ZIP bundle holds it, reads as the compressed one does.
func TestUncompressed(t *testing.T) {
	ev, _, _ := bundles(t, costRun(t, "agent-research", 300, 200))
	packed := check(t, write(t, "packed.pdf", ev, Info{}))
	plain := check(t, write(t, "plain.pdf", ev, Info{Uncompressed: true}))
	if !slices.Equal(packed, plain) {
		t.Error("the uncompressed report does not read as the compressed one")
	}
}

func TestEdgeCases(t *testing.T) {
	clean := simulate(t, run{agent: "agent-research", steps: 3, stepType: "llm:gpt-4o-mini", in: 300, out: 80,
		policies: []runproof.Policy{pol("cost cap", runproof.PolicyCostLimit, "100", runproof.ActionStop)}})
	ev, err := evidence.BuildEvidence(clean, options())
	if err != nil {
		t.Fatal(err)
	}
	opts := options()
	opts.IncludeRawSteps = false
	omitted, err := evidence.BuildEvidence(costRun(t, "agent-research", 6, 3), opts)
	if err != nil {
		t.Fatal(err)
	}
	long := costRun(t, "agent-research", 4, 2)
	editSteps(t, &long, func(steps []runproof.Step) {
		steps[1].StepType = strings.Repeat("tool:very-long-name/", 20) + "\x00\t\xff😀"
	})
	long.Run.Goal = strings.Repeat("a long goal that wraps over several lines ", 30)
	lb, _, _ := bundles(t, long)
	empty, err := evidence.BuildEvidence(simulate(t, run{agent: "agent-research", steps: 0}), options())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		b        evidence.Bundle
		want, no string
	}{
		{"clean.pdf", &ev, "", ""},
		{"omitted.pdf", &omitted, "No chart: the steps are not in this export.", ""},
		{"no-steps.pdf", &empty, "No chart: the run has no steps.", "not in this export"},
		{"long-cells.pdf", lb, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Join(check(t, write(t, c.name, c.b, Info{})), "\n")
			if !strings.Contains(text, c.want) || c.no != "" && strings.Contains(text, c.no) {
				t.Errorf("the text says %q: want %q, and not %q", text, c.want, c.no)
			}
		})
	}
}

// TestTablesStartWithARow: a table's caption and header are never left
// at a page's foot without a row under them. The goal's length moves the
// policy tables down the page a line at a time; the policies' names wrap
// over several lines.
func TestTablesStartWithARow(t *testing.T) {
	need(t, "pdftotext")
	name := strings.Repeat("a policy name long enough to wrap ", 3)
	for lines := range 40 {
		src := simulate(t, run{agent: "agent-research", goal: strings.Repeat("goal ", 1+lines*22),
			policies: []runproof.Policy{pol("A "+name, runproof.PolicyCostLimit, "70", runproof.ActionStop),
				pol("B "+name, runproof.PolicyTokenLimit, "100", runproof.ActionWarn)},
			steps: 4, stepType: "llm:gpt-4o", in: 400, out: 150, costMicro: 30 * runproof.MicrocentsPerCent, durMicro: 1_250_500})
		ev, _, _ := bundles(t, src)
		var buf bytes.Buffer
		if err := Write(context.Background(), &buf, ev, Info{}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "e.pdf")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("pdftotext", "-layout", path, "-").Output()
		if err != nil {
			t.Fatal(err)
		}
		for i, page := range strings.Split(string(out), "\f") {
			for _, caption := range []string{"Active policies (2)", "Policies exceeded (2)"} {
				if at := strings.Index(page, caption); at >= 0 && !strings.Contains(page[at:], "A a policy") {
					t.Errorf("goal of %d lines: %q ends page %d without a row", lines, caption, i+1)
				}
			}
		}
	}
}

// TestFiguresAreNotCut: a figure too wide for its column is written
// smaller, whole, where text would be cut with an ellipsis.
func TestFiguresAreNotCut(t *testing.T) {
	src := costRun(t, "agent-research", 4, 2)
	editSteps(t, &src, func(steps []runproof.Step) {
		for i := range steps {
			steps[i].CostMicrocents = 123_456_789 // 123.456789 cents
		}
	})
	b, _, _ := bundles(t, src)
	text := strings.Join(check(t, write(t, "wide-figures.pdf", b, Info{})), "\n")
	if cut := regexp.MustCompile(`\s[0-9.,]+…`).FindAllString(text, -1); len(cut) > 0 || strings.Count(text, "123.456789") < 4 {
		t.Errorf("figures cut: %q; 123.456789 shown %d times", cut, strings.Count(text, "123.456789"))
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{evidence.Group(0), "0"}, {evidence.Group(999), "999"}, {evidence.Group(1000), "1,000"}, {evidence.Group(-1234567), "-1,234,567"},
		{decimal(22950), "22,950"}, {decimal(1250.5), "1,250.5"}, {decimal(0.000001), "0.000001"},
		{dollars(120), "$1.20"}, {dollars(0.4), "less than $0.01"}, {dollars(0), "$0.00"}, {dollars(0.5), "$0.01"}, {dollars(123456789.5), "$1,234,567.90"}, {dollars(-5), "-$0.05"},
		{when("2026-03-10T14:00:04.200000Z"), "2026-03-10 14:00:04.200000 UTC"}, {when(""), ""},
		{after("2026-03-10T14:00:04Z", "2026-03-10T14:00:04.2Z", "x"), " (0.2 seconds after x)"},
		{after("2026-03-10T14:00:04Z", "2026-03-10T14:06:35.596Z", "x"), " (6 minutes 32 seconds after x)"}, // rounded, as the debrief says it
		{after("2026-03-10T14:02:04Z", "2026-03-10T14:00:04.2Z", "x"), " (0 seconds after x)"},
		{afterViolation("2026-03-10T14:02:04Z", "2026-03-10T14:00:04.2Z"), // an agent's clock ahead
			" (0 seconds after the violation, whose time is the agent's clock: it runs 2 minutes ahead of runproof's)"},
		{afterViolation("2026-03-10T14:00:04.9Z", "2026-03-10T14:00:04.2Z"), " (0 seconds after the violation)"}, // under a second: noise
		{after("", "2026-03-10T14:00:04.2Z", "x"), ""}, {evidence.Duration(1), "1 second"}, {evidence.Duration(0.04), "0.04 seconds"},
		{notCompleted(runproof.RunStopped), "not yet: the run was stopped, and its agent has not ended it"}, {notCompleted(runproof.RunFailed), "not recorded"},
		{short(24010), "24k"}, {short(3_500_000), "3.5M"}, {short(0.5), "0.5"}, {short(5e15), "5000T"}, {short(9.2e9), "9.2B"},
		{clean("a\tb\x00c\xff😀\nd"), "a b c\uFFFD<U+1F600>\nd"},
		{clean("目标 café Ωμέγα Привет"), "<U+76EE U+6807> café Ωμέγα Привет"}, {clean("目 标"), "<U+76EE> <U+6807>"},
		{clean("tool:sh\u00adell"), "tool:sh<U+00AD>ell"}, {clean("tool:shell\u200b"), "tool:shell<U+200B>"},
		{breach(evidence.PolicyContext{ViolationType: runproof.PolicyTokenLimit, ThresholdValue: "10000", ActualValue: "10001"}),
			"threshold 10,000 tokens, actual 10,001 tokens (just over)"}, // 0.01 %
		{breach(evidence.PolicyContext{ViolationType: runproof.PolicyTokenLimit, ThresholdValue: "10000", ActualValue: "10010"}),
			"threshold 10,000 tokens, actual 10,010 tokens (0.1% over)"},
		{rule(evidence.ActivePolicy{Type: runproof.PolicyStepLimit, Threshold: "1"}), "1 step"},
		{rule(evidence.ActivePolicy{Type: runproof.PolicyCostLimit, Threshold: "2"}), "2 cents"},
		{groupDecimal("90000.5"), "90,000.5"}, {groupDecimal("3000"), "3,000"}, {groupDecimal("1e5"), "1e5"}, {groupDecimal("x.5"), "x.5"},
		{groupDecimal("12.3.4"), "12.3.4"}, {groupDecimal("-1234.5"), "-1,234.5"}, {groupDecimal("--1"), "--1"}, {decimal(-0.5), "-0.5"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestGlyphs: the four embedded fonts have the glyphs of the regular one,
// which clean keeps, and U+FFFD, which stands for invalid UTF-8.
func TestGlyphs(t *testing.T) {
	has := glyphs()
	if !has['é'] || !has['Ж'] || !has[utf8.RuneError] || has['目'] {
		t.Fatal("the regular font's glyphs are not read")
	}
	for name, ttf := range map[string][]byte{"bold": gobold.TTF, "italic": goitalic.TTF, "mono": gomono.TTF} {
		f, err := sfnt.Parse(ttf)
		if err != nil {
			t.Fatal(err)
		}
		var buf sfnt.Buffer
		for r := range rune(len(has)) {
			if g, err := f.GlyphIndex(&buf, r); (err == nil && g != 0) != has[r] {
				t.Errorf("the %s font differs from the regular one at %U", name, r)
				break
			}
		}
	}
}

func TestWriteRejects(t *testing.T) {
	for _, b := range []evidence.Bundle{nil, (*evidence.EvidenceBundle)(nil), (*evidence.SOC2Bundle)(nil), (*evidence.ExecutiveDebriefBundle)(nil)} {
		if err := Write(context.Background(), &bytes.Buffer{}, b, Info{}); err == nil {
			t.Errorf("Write(%T) succeeded", b)
		}
	}
}

var errFull = errors.New("disk full")

type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, errFull }

func TestWriteError(t *testing.T) {
	ev, _, _ := bundles(t, costRun(t, "agent-research", 6, 3))
	if err := Write(context.Background(), fullWriter{}, ev, Info{}); !errors.Is(err, errFull) {
		t.Errorf("Write to a full disk: %v, want %v", err, errFull)
	}
}

// TestWriteCancelled: a report whose context is done gives up in its
// timeline with the context's error, for the evidence and the SOC 2 report.
func TestWriteCancelled(t *testing.T) {
	ev, soc2, _ := bundles(t, costRun(t, "agent-research", 2000, 1500))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, b := range []evidence.Bundle{ev, soc2} {
		if err := Write(ctx, &bytes.Buffer{}, b, Info{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Write(%T) with its context cancelled: %v", b, err)
		}
	}
}

func BenchmarkEvidencePDF10k(b *testing.B) {
	ev, _, _ := bundles(b, costRun(b, "agent-research", 10_000, 7_000))
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Write(context.Background(), &buf, ev, Info{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len())/1e6, "MB/pdf")
}

// TestLongTimeline: the timeline of a long run shows its first steps, those
// around the inflection and its last, with a row for each stretch left out
// that carries the running totals on.
func TestLongTimeline(t *testing.T) {
	ev, _, _ := bundles(t, costRun(t, "agent-research", 5000, 3000))
	text := strings.Join(check(t, write(t, "long-timeline.pdf", ev, Info{})), "\n")
	for _, want := range []string{
		"The 5,000 steps of the run in index order: the first 1,000, the 250 on each side of the inflection step and the last 250",
		// with the running totals up to their last step, at 550 tokens and
		// 30 cents a step (the cost is printed apart from the rest of its row)
		"1,750 steps not shown 1,512,500", "82,500", // 1000–2749
		"1,499 steps not shown 2,612,500", "142,500", // 3251–4749
	} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	for _, step := range []string{"\n999 ", "\n2750 ", "\n3000 ", "\n3250 ", "\n4750 ", "\n4999 "} {
		if !strings.Contains(text, step) {
			t.Errorf("the report lacks the row of step %s", strings.TrimSpace(step))
		}
	}
	for _, step := range []string{"\n1000 ", "\n2749 ", "\n3251 ", "\n4749 "} {
		if strings.Contains(text, step) {
			t.Errorf("the report shows the row of step %s", strings.TrimSpace(step))
		}
	}

	// One step alone between those shown (1252) is shown, not left out.
	ev, _, _ = bundles(t, costRun(t, "agent-research", 1503, 1001))
	text = strings.Join(strings.Fields(strings.Join(check(t, write(t, "edge-timeline.pdf", ev, Info{})), "\n")), " ")
	if !strings.Contains(text, "All 1,503 steps of the run") || strings.Contains(text, "not shown") {
		t.Errorf("a run with one step between those kept leaves it out")
	}
}

// TestHugeCellsSplitAcrossPages: a value too long for one page (a goal
// with no space to wrap at, a long expression) flows on from page to page
// rather than taking a page a line, and none of it is lost off the page.
func TestHugeCellsSplitAcrossPages(t *testing.T) {
	rule := pol("long rule", runproof.PolicyExpression, "", runproof.ActionWarn)
	rule.Expression = `step.step_type == "` + strings.Repeat("x", 4000) + `" || step.step_type == "the-rule-ends-here"`
	src := simulate(t, run{agent: "agent-research", goal: strings.Repeat("W", 6000) + " the-goal-ends-here",
		policies: []runproof.Policy{rule, pol("cost cap", runproof.PolicyCostLimit, "70", runproof.ActionStop)},
		steps:    4, stepType: "llm:gpt-4o", in: 400, out: 150, costMicro: 30 * runproof.MicrocentsPerCent, durMicro: 1_250_500})
	ev, soc2, _ := bundles(t, src)
	for name, b := range map[string]evidence.Bundle{"evidence-huge-cells.pdf": ev, "soc2-huge-cells.pdf": soc2} {
		pages := check(t, write(t, name, b, Info{}))
		if len(pages) > 14 {
			t.Errorf("%s: %d pages", name, len(pages))
		}
		text := strings.Join(pages, "")
		for _, want := range []string{"the-goal-ends-here", "the-rule-ends-here"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: the text lacks %q", name, want)
			}
		}
	}
}

// TestDebriefEverySentence: a debrief that says all it can (a late step,
// steps in the same request, under way and after the stop, five actions)
// and has no notes to cut keeps to one page, and so with a name the fonts
// lack, whose legend takes room too.
func TestDebriefEverySentence(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "debrief-every-sentence.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, preparedFor := range map[string]string{"ascii": "", "cjk": "Board of Directors 董事会"} {
		t.Run(name, func(t *testing.T) {
			var d evidence.ExecutiveDebriefBundle
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			d.PreparedFor = cmp.Or(preparedFor, d.PreparedFor)
			pages := check(t, write(t, "debrief-every-sentence-"+name+".pdf", &d, Info{ExportID: "0195a3c5-0000-7000-8000-000000000042"}))
			text := strings.Join(pages, " ")
			if len(pages) != 1 || !strings.Contains(text, "runproof verify FILE.zip") || !strings.Contains(text, "Make the agent honour stop decisions") {
				t.Errorf("the debrief has %d pages, want one with its references", len(pages))
			}
		})
	}
}

// TestCutToFit: a line cut to fit ends between words when it can, and
// never inside a group of code points (closeGroup).
func TestCutToFit(t *testing.T) {
	within := func(n int) func(string) bool { return func(s string) bool { return len(s) <= n } }
	for _, c := range []struct {
		line string
		n    int
		want string
	}{
		{"We can lower the cap", 9, "We …"},
		{"We can lower the cap", 11, "We can …"},
		{"Wecanlowerthecap", 9, "Wecan …"}, // one word: cut within it
		{"say <U+0623 U+0644 U+0639>", 20, "say <U+0623> …"},
		{"<U+0623 U+0644 U+0639>", 12, "<U+0623> …"},
		{"<U+0623 U+0644 U+0639>", 8, " …"},
		{"<U+0623 U+0644 U+0639>", 9, " …"}, // "<U+0623 …" fits, "<U+0623> …" would not
	} {
		if got := cutToFit(c.line, " …", within(c.n)); got != c.want {
			t.Errorf("cutToFit(%q) within %d = %q, want %q", c.line, c.n, got, c.want)
		}
	}
}

// TestCloseGroup: a text cut short never ends inside a group of code
// points: the group keeps its whole code points, closed, or goes.
func TestCloseGroup(t *testing.T) {
	for _, c := range []struct{ cut, rest, want string }{
		{"abc <U+7981 U+6B", "62> x", "abc <U+7981>"},
		{"abc <U+7981", " U+6B62>", "abc <U+7981>"},
		{"abc <U+7981 ", "U+6B62>", "abc <U+7981>"},
		{"abc <U", "+7981>", "abc"},
		{"abc <", "U+7981>", "abc"},
		{"abc <U+7981>", " x", "abc <U+7981>"},
		{"We c", "an", "We c"},
		{"a <b", "c>", "a <b"},
	} {
		if got := closeGroup(c.cut, c.rest); got != c.want {
			t.Errorf("closeGroup(%q, %q) = %q, want %q", c.cut, c.rest, got, c.want)
		}
	}
}

// TestFitWithinWidth: a name shortened to fit, code-point groups closed
// included, is never wider than the room it was given.
func TestFitWithinWidth(t *testing.T) {
	r := newReport(context.Background(), Info{}, pageInfo{title: "t"})
	r.font(sans, "B", 11, ink)
	rng := rand.New(rand.NewPCG(3, 5))
	parts := []string{"spending", "limit", "iiiii", "WWW", "季度报告", "代理", "منع", "é", " ", " ", "<", ">"}
	for range 2000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		w := 20 + rng.Float64()*50
		if got := r.fit(b.String(), w); r.pdf.GetStringWidth(got) > w-2*r.pdf.GetCellMargin()+1e-9 {
			t.Fatalf("fit(%q, %.2f) = %q, %.2f wide", b.String(), w, got, r.pdf.GetStringWidth(got))
		}
	}
}
