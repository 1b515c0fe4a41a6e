package runproof

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// stepHashReference is the step hash input built the slow, obviously right
// way: a struct through encoding/json and the JCS library.
func stepHashReference(t testing.TB, s Step) []byte {
	t.Helper()
	in := struct {
		StepIndex     int64   `json:"step_index"`
		Timestamp     string  `json:"timestamp"`
		StepType      string  `json:"step_type"`
		InputTokens   int64   `json:"input_tokens"`
		OutputTokens  int64   `json:"output_tokens"`
		CostCents     float64 `json:"cost_cents"`
		DurationMs    float64 `json:"duration_ms"`
		ContentDigest *string `json:"content_digest"`
	}{s.Index, FormatTime(s.Timestamp), s.StepType, s.InputTokens, s.OutputTokens, Cents(s.CostMicrocents), Millis(s.DurationMicros), nil}
	if s.ContentDigest != "" {
		in.ContentDigest = &s.ContentDigest
	}
	b, err := Canonical(in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStepHashMatchesJCS(t *testing.T) {
	s := Step{Index: 3, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), StepType: "tool:\"search\"\n\x01\u2028é",
		InputTokens: 10, OutputTokens: 5, CostMicrocents: 30_000_001, DurationMicros: 1, ContentDigest: DigestBytes([]byte("x"))}
	got, want := stepHashBytes(s, nil), stepHashReference(t, s)
	if string(got) != string(want) {
		t.Fatalf("canonical bytes differ:\n got %s\nwant %s", got, want)
	}
}

func FuzzStepHash(f *testing.F) {
	f.Add(int64(0), "llm", int64(1), int64(2), int64(300_000), int64(12_346), true)
	f.Add(int64(7), "a\"b\\c\u007f\u2029", int64(0), int64(0), int64(1), int64(1<<52), false)
	f.Fuzz(func(t *testing.T, idx int64, typ string, in, out, cost, dur int64, digest bool) {
		if !utf8.ValidString(typ) || idx < 0 || in < 0 || out < 0 || cost < 0 || dur < 0 || cost > 1<<53 || dur > 1<<53 {
			return
		}
		s := Step{Index: idx, Timestamp: time.Unix(idx%4_000_000_000, idx%1000*1000).UTC(), StepType: typ,
			InputTokens: in, OutputTokens: out, CostMicrocents: cost, DurationMicros: dur}
		if digest {
			s.ContentDigest = DigestBytes([]byte(typ))
		}
		if got, want := stepHashBytes(s, nil), stepHashReference(t, s); string(got) != string(want) {
			t.Fatalf("canonical bytes differ:\n got %s\nwant %s", got, want)
		}
		var v map[string]any
		if err := json.Unmarshal(stepHashBytes(s, nil), &v); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzCanonicalJSON checks runproof's canonical form against a second,
// independent RFC 8785 implementation.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1e21,0.0000001,-0,1.5e-7]}`, `"\u2028\u0001é"`, `[{"z":null,"é":true,"e":false}]`, `123456789012345678901234567890`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, err := CanonicalJSON(b)
		ref, refErr := jcs.Transform(b)
		if err != nil || refErr != nil {
			return // the two differ on which invalid inputs they refuse; both refuse most
		}
		if string(ours) != string(ref) {
			t.Fatalf("canonical forms differ for %q:\n ours %s\n ref  %s", b, ours, ref)
		}
	})
}
