package evidence_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
	"github.com/runproof/runproof/internal/render/csvr"
	"github.com/runproof/runproof/internal/render/jsonr"
	"github.com/runproof/runproof/internal/runproof"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type dataCase struct {
	name    string
	src     func(testing.TB) evidence.Source
	content bool
}

var dataSet = []dataCase{
	{"cost", costRun, true},
	{"token", tokenRun, false},
	{"denied", deniedRun, false},
	{"clean", cleanRun, false},
}

// built is one bundle of the data set and its JSON bytes.
type built struct {
	kind   string
	bundle evidence.Bundle
	json   []byte
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := evidencetest.Canonical(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildAll builds every bundle a source has: evidence and SOC 2 always, the
// debrief when there is an incident.
func buildAll(t testing.TB, src evidence.Source, opts evidence.Options) []built {
	t.Helper()
	ev, err := evidence.BuildEvidence(src, opts)
	if err != nil {
		t.Fatalf("BuildEvidence: %v", err)
	}
	soc2, err := evidence.BuildSOC2(src, opts)
	if err != nil {
		t.Fatalf("BuildSOC2: %v", err)
	}
	out := []built{{"evidence", &ev, encode(t, ev)}, {"soc2", &soc2, encode(t, soc2)}}
	if src.Incident != nil {
		ex, err := evidence.BuildExecutiveDebrief(src, opts)
		if err != nil {
			t.Fatalf("BuildExecutiveDebrief: %v", err)
		}
		out = append(out, built{"executive_debrief", &ex, encode(t, ex)})
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/evidence -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./internal/evidence -update rewrites it)\n got %s\nwant %s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, c := range dataSet {
		t.Run(c.name, func(t *testing.T) {
			opts := goldenOptions()
			opts.IncludeContent = c.content
			for _, b := range buildAll(t, c.src(t), opts) {
				var j, csv bytes.Buffer
				e := jsonr.NewEncoder(&j)
				if err := e.Encode(b.bundle); err != nil || e.Close() != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(j.Bytes(), b.json) {
					t.Errorf("%s: jsonr writes other bytes than Canonical", b.kind)
				}
				golden(t, c.name+"."+b.kind+".json", j.Bytes())
				if err := evidencetest.VerifyContentHash(j.Bytes()); err != nil {
					t.Errorf("%s: %v", b.kind, err)
				}
				if b.kind != "soc2" { // the same rows as the evidence bundle's
					if err := csvr.WriteBundle(&csv, b.bundle); err != nil {
						t.Fatal(err)
					}
					golden(t, c.name+"."+b.kind+".csv", csv.Bytes())
				}
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	a := buildAll(t, costRun(t), goldenOptions())
	b := buildAll(t, costRun(t), goldenOptions())
	for i := range a {
		if !bytes.Equal(a[i].json, b[i].json) {
			t.Errorf("%s: two builds of the same data differ", a[i].kind)
		}
	}
}

func TestEvidenceTotalsAndIds(t *testing.T) {
	src := costRun(t)
	opts := goldenOptions()
	opts.IncludeRawSteps = false
	b, err := evidence.BuildEvidence(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b.BundleID != "EVD-01JQ3F8Z6Y" || b.BundleType != runproof.BundleEvidence {
		t.Errorf("bundle id %q type %q", b.BundleID, b.BundleType)
	}
	if b.Steps.Len() != 0 || b.StepsOmitted != 6 || b.TotalSteps != 6 || b.TotalCostCents != 180 || b.TotalTokens != 3300 || b.TotalDurationMs != 7503 {
		t.Errorf("steps %d omitted %d totals %d %v %d %v", b.Steps.Len(), b.StepsOmitted, b.TotalSteps, b.TotalCostCents, b.TotalTokens, b.TotalDurationMs)
	}
	if *b.FirstStepIndex != 0 || *b.LastStepIndex != 5 || *b.ViolationStepIndex != 3 {
		t.Errorf("indexes %d %d %d", *b.FirstStepIndex, *b.LastStepIndex, *b.ViolationStepIndex)
	}
	if got := len(b.PolicyContext.ActivePolicies); got != 3 {
		t.Errorf("%d active policies, want the full snapshot of 3", got)
	}
	if j := encode(t, b); !bytes.Contains(j, []byte(`"steps":[]`)) {
		t.Errorf("steps must be an empty list, not absent or null: %s", j)
	}
}

func TestIncompleteSourceRefused(t *testing.T) {
	tests := []struct {
		name string
		edit func(*evidence.Source, *evidence.Options)
		code string
	}{
		{"no bundle id", func(_ *evidence.Source, o *evidence.Options) { o.BundleID = "" }, runproof.EINVALID},
		{"no time", func(_ *evidence.Source, o *evidence.Options) { o.CreatedAt = time.Time{} }, runproof.EINVALID},
		{"step missing", func(s *evidence.Source, _ *evidence.Options) { s.Steps = evidence.StepsOf(stepsOf(t, *s)[:5]) }, runproof.ECONFLICT},
		{"step out of order", func(s *evidence.Source, _ *evidence.Options) {
			steps := stepsOf(t, *s)
			steps[1], steps[2] = steps[2], steps[1]
			s.Steps = evidence.StepsOf(steps)
		}, runproof.EINTERNAL},
		{"other snapshot", func(s *evidence.Source, _ *evidence.Options) { s.Snapshot.ID = "sha256:00" }, runproof.EINTERNAL},
		// Stored evidence changed behind runproof's back is not signed.
		{"step edited", func(s *evidence.Source, _ *evidence.Options) {
			steps := stepsOf(t, *s)
			steps[2].CostMicrocents++
			s.Steps = evidence.StepsOf(steps)
		}, runproof.ECONFLICT},
		{"content edited", func(s *evidence.Source, o *evidence.Options) {
			steps := stepsOf(t, *s)
			steps[1].Content, steps[1].ContentDigest = []byte(`{"prompt":"edited"}`), runproof.DigestBytes([]byte(`{"prompt":"original"}`))
			steps[1].ContentHash = runproof.StepContentHash(steps[1])
			s.Steps, o.IncludeContent = evidence.StepsOf(steps), true
		}, runproof.ECONFLICT},
		{"step edited and hashed again", func(s *evidence.Source, _ *evidence.Options) {
			steps := stepsOf(t, *s)
			steps[2].CostMicrocents++
			steps[2].ContentHash = runproof.StepContentHash(steps[2])
			s.Steps = evidence.StepsOf(steps)
		}, runproof.ECONFLICT},
		{"run totals edited", func(s *evidence.Source, _ *evidence.Options) { s.Run.Totals.CostMicrocents = 1 }, runproof.ECONFLICT},
		{"incident taken off the run", func(s *evidence.Source, _ *evidence.Options) { s.Run.IncidentID, s.Incident = "", nil }, runproof.ECONFLICT},
		{"other run's incident", func(s *evidence.Source, _ *evidence.Options) { s.Incident.RunID = "x" }, runproof.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, opts := costRun(t), goldenOptions()
			tt.edit(&src, &opts)
			_, err := evidence.BuildEvidence(src, opts)
			if code := runproof.ErrorCode(err); code != tt.code {
				t.Errorf("error %v (code %q), want code %q", err, code, tt.code)
			}
		})
	}
}

func TestVerifyContentHashDetectsChanges(t *testing.T) {
	for _, b := range buildAll(t, costRun(t), goldenOptions()) {
		changed := bytes.Replace(b.json, []byte(`"total_steps":6`), []byte(`"total_steps":7`), 1)
		if bytes.Equal(changed, b.json) {
			changed = bytes.Replace(b.json, []byte(`"risk_level":"medium"`), []byte(`"risk_level":"low"`), 1)
		}
		if err := evidencetest.VerifyContentHash(changed); err == nil {
			t.Errorf("%s: a changed bundle verifies", b.kind)
		}
		// Other spacing and member order: the same canonical form, the same hash.
		var v any
		if err := json.Unmarshal(b.json, &v); err != nil {
			t.Fatal(err)
		}
		indented, _ := json.MarshalIndent(v, "", "  ")
		if err := evidencetest.VerifyContentHash(indented); err != nil {
			t.Errorf("%s: re-indented bundle: %v", b.kind, err)
		}
	}
	for _, bad := range []string{``, `[]`, `{"a":1}`, `{"content_hash":1}`, `{"content_hash":"x","content_hash":"x"}`} {
		if err := evidencetest.VerifyContentHash([]byte(bad)); err == nil {
			t.Errorf("%q verifies", bad)
		}
	}
}

func TestSOC2EvidenceDigest(t *testing.T) {
	src := costRun(t)
	soc2, err := evidence.BuildSOC2(src, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	j := encode(t, soc2)
	if err := evidencetest.VerifyEvidenceDigest(j); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(soc2.AttestationStatement, soc2.EvidenceDigest) || !strings.Contains(soc2.AttestationStatement, soc2.BundleID) {
		t.Errorf("the statement must cite the bundle id and evidence digest: %s", soc2.AttestationStatement)
	}
	// The evidence digest is the evidence bundle's hash with the SOC 2 id and type.
	ev := soc2.EvidenceBundle
	if err := ev.SetContentHash(); err != nil {
		t.Fatal(err)
	}
	if ev.ContentHash != soc2.EvidenceDigest {
		t.Errorf("evidence digest %s, want %s", soc2.EvidenceDigest, ev.ContentHash)
	}
}

// TestFieldsInJCSOrder keeps the structs of an evidence bundle declared in
// RFC 8785 order. The step list's shortcut past the canonicalizer relies on
// TraceStepEvidence's order; the others go through the canonicalizer, and
// are kept in order so that they read as the written bundle does.
func TestFieldsInJCSOrder(t *testing.T) {
	for _, v := range []any{evidence.EvidenceBundle{}, evidence.TraceStepEvidence{}, evidence.PolicyContext{}, evidence.ActivePolicy{}} {
		typ := reflect.TypeOf(v)
		var names []string
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			names = append(names, name)
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s: fields not in JCS order: %v", typ.Name(), names)
		}
	}
}

// canonicalReference is the obvious way: encoding/json, then an
// independent JCS library.
func canonicalReference(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jcs.Transform(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCanonicalMatchesJCS(t *testing.T) {
	for _, c := range dataSet {
		opts := goldenOptions()
		opts.IncludeContent = true
		for _, b := range buildAll(t, c.src(t), opts) {
			if got, want := b.json, canonicalReference(t, b.bundle); !bytes.Equal(got, want) {
				t.Errorf("%s %s:\n got %s\nwant %s", c.name, b.kind, got, want)
			}
		}
	}
}

func FuzzCanonicalEvidence(f *testing.F) {
	f.Add("llm:gpt-4o", "goal <&>", `{"b":1,"a":"x"}`, int64(30_000_000), int64(1_250_500), int64(400))
	f.Add("tool:\"q\"\n\u2028\x01é", "", `[1e21, 1.5e-7, "\u2029"]`, int64(1), int64(1), int64(0))
	f.Add("x", "y", `{"a": {"z": 0.1, "é": 2, "e": 1}}`, int64(1<<53), int64(0), int64(1<<53))
	f.Fuzz(func(t *testing.T, typ, goal, content string, cost, dur, tokens int64) {
		if cost < 0 || dur < 0 || tokens < 0 || cost > 1<<60 || dur > 1<<60 || tokens > 1<<60 {
			return
		}
		if _, err := jcs.Transform([]byte(content)); err != nil || !json.Valid([]byte(content)) {
			content = ""
		}
		step := evidence.TraceStepEvidence{StepType: typ, CostCents: runproof.Cents(cost), DurationMs: runproof.Millis(dur),
			Tokens: tokens, InputTokens: tokens, Content: json.RawMessage(content)}
		if content == "" {
			step.Content = nil
		}
		steps, err := evidence.StepListOf(step, step)
		if err != nil {
			t.Fatal(err)
		}
		b := evidence.EvidenceBundle{BundleID: "EVD-" + goal, RunGoal: goal, TotalCostCents: runproof.Cents(cost),
			TotalTokens: tokens, TotalDurationMs: runproof.Millis(dur), PolicyContext: evidence.PolicyContext{
				ActivePolicies: []evidence.ActivePolicy{{Name: typ, StepTypes: []string{typ, goal}}}},
			Steps: steps}
		got, err := evidencetest.Canonical(b)
		if err != nil {
			t.Fatal(err)
		}
		if want := canonicalReference(t, b); !bytes.Equal(got, want) {
			t.Fatalf("canonical forms differ:\n got %s\nwant %s", got, want)
		}
	})
}

// TestSOC2Review: a review shows in a SOC 2 bundle when it covers the
// run's steps, and not when the run has more steps than it covered.
func TestSOC2Review(t *testing.T) {
	src := costRun(t)
	at := t0.Add(time.Hour)
	src.Review = &runproof.Review{BundleID: "SOC2-earlier", Status: evidence.ReviewApproved, ReviewedBy: "Ada Lovelace",
		KeyID: "0199c0de-aaaa-7000-8000-000000000002", Notes: "Trace checked.", RunSteps: src.Run.Totals.Steps, Remediation: src.Remediation(), ReviewedAt: at}
	b, err := evidence.BuildSOC2(src, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if b.ReviewStatus != evidence.ReviewApproved || b.ReviewedBy != "Ada Lovelace" || b.ReviewedAt != runproof.FormatTime(at) ||
		b.AuditorNotes != "Trace checked." || b.ReviewKeyID != "0199c0de-aaaa-7000-8000-000000000002" || !strings.Contains(b.AttestationStatement, "Signed off by Ada Lovelace at "+runproof.FormatTime(at)+", on bundle SOC2-earlier of the same "+
		fmt.Sprint(src.Run.Totals.Steps)+" steps, recorded with API key 0199c0de-aaaa-7000-8000-000000000002.") {
		t.Errorf("reviewed: %s by %q at %q with key %q, notes %q; attestation %q", b.ReviewStatus, b.ReviewedBy, b.ReviewedAt, b.ReviewKeyID, b.AuditorNotes, b.AttestationStatement)
	}
	unreviewed, err := evidence.BuildSOC2(costRun(t), goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if b.EvidenceDigest != unreviewed.EvidenceDigest || b.ContentHash == unreviewed.ContentHash {
		t.Error("a review must change the content hash and not the evidence digest")
	}

	other := *src.Review
	other.Remediation = "completed"
	src.Review = &other
	if b, err := evidence.BuildSOC2(src, goldenOptions()); err != nil || b.ReviewStatus != evidence.ReviewPending {
		t.Errorf("a review of another remediation status shows: %s, %v", b.ReviewStatus, err)
	}
	other.Remediation = src.Remediation()

	// Nor one given on other remediation notes. One made before their
	// digest was recorded was given on a bundle showing none: it shows
	// while there are none.
	other.RemediationNotesDigest = src.RemediationNotesDigest()
	inc := *src.Incident
	inc.RemediationNotes = "Cap lowered."
	noted := src
	noted.Incident = &inc
	if b, err := evidence.BuildSOC2(noted, goldenOptions()); err != nil || b.ReviewStatus != evidence.ReviewPending {
		t.Errorf("a review given on other remediation notes shows: %s, %v", b.ReviewStatus, err)
	}
	other.RemediationNotesDigest = ""
	if b, err := evidence.BuildSOC2(noted, goldenOptions()); err != nil || b.ReviewStatus != evidence.ReviewPending {
		t.Errorf("a review made before the notes were recorded shows beside notes: %s, %v", b.ReviewStatus, err)
	}
	if b, err := evidence.BuildSOC2(src, goldenOptions()); err != nil || b.ReviewStatus != evidence.ReviewApproved {
		t.Errorf("a review made before the notes were recorded does not show without notes: %s, %v", b.ReviewStatus, err)
	}

	// A bundle without the raw steps has other controls than the one
	// signed off, which held them.
	if b, err := evidence.BuildSOC2(src, evidence.Options{BundleID: "b", CreatedAt: t0, IncludeRawSteps: false}); err != nil ||
		b.ReviewStatus != evidence.ReviewPending {
		t.Errorf("a bundle without its steps shows the sign-off: %s, %v", b.ReviewStatus, err)
	}

	src.Review.RunSteps--
	b, err = evidence.BuildSOC2(src, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if b.ReviewStatus != evidence.ReviewPending || b.ReviewedBy != "" || b.AuditorNotes != "" || strings.Contains(b.AttestationStatement, "Signed off") {
		t.Errorf("a review of fewer steps than the run's shows: %s by %q", b.ReviewStatus, b.ReviewedBy)
	}
}
