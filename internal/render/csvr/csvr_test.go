package csvr_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/render/csvr"
)

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errFull
	}
	w.n -= len(p)
	return len(p), nil
}

func steps(n int) []evidence.TraceStepEvidence {
	out := make([]evidence.TraceStepEvidence, n)
	for i := range out {
		out[i] = evidence.TraceStepEvidence{StepIndex: int64(i), Timestamp: fmt.Sprintf("2026-03-10T14:00:%02d.000000Z", i%60),
			StepType: "tool:search, \"quoted\"", InputTokens: 3, OutputTokens: 4, Tokens: 7, CostCents: 0.300001,
			DurationMs: 1250.5, Status: "ok", ContentHash: "sha256:" + strings.Repeat("ab", 32)}
	}
	return out
}

func TestEncodeRows(t *testing.T) {
	var buf bytes.Buffer
	list, err := evidence.StepListOf(steps(2)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := csvr.WriteBundle(&buf, &evidence.EvidenceBundle{Steps: list}); err != nil {
		t.Fatal(err)
	}
	h := "sha256:" + strings.Repeat("ab", 32)
	want := "step_index,timestamp,step_type,input_tokens,output_tokens,tokens,cost_cents,duration_ms,status,is_inflection,content_hash\n" +
		`0,2026-03-10T14:00:00.000000Z,"tool:search, ""quoted""",3,4,7,0.300001,1250.5,ok,false,` + h + "\n" +
		`1,2026-03-10T14:00:01.000000Z,"tool:search, ""quoted""",3,4,7,0.300001,1250.5,ok,false,` + h + "\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestHeaderWithoutSteps(t *testing.T) {
	var buf bytes.Buffer
	if err := csvr.WriteBundle(&buf, &evidence.SOC2Bundle{}); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != strings.Join(csvr.StepHeader, ",")+"\n" {
		t.Errorf("got %q", got)
	}
}

func TestFailingWriter(t *testing.T) {
	debrief := &evidence.ExecutiveDebriefBundle{BundleID: "EXEC-1", IncidentSummary: strings.Repeat("x", 5000),
		RecommendedActions: []string{"a", "b"}}
	for _, n := range []int{0, 1, 100, 4095, 4097, 20_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := csvr.NewEncoder(&failingWriter{n: n})
			var err error
			for _, s := range steps(500) {
				if err = e.Encode(s); err != nil {
					break
				}
			}
			if cerr := e.Close(); !errors.Is(cerr, errFull) || (err != nil && !errors.Is(err, errFull)) {
				t.Errorf("Encode %v, Close %v, want %v", err, cerr, errFull)
			}
			if err := e.Encode(steps(1)[0]); !errors.Is(err, errFull) {
				t.Errorf("Encode after a failure: %v", err)
			}
			if n < 5000 {
				if err := csvr.WriteBundle(&failingWriter{n: n}, debrief); !errors.Is(err, errFull) {
					t.Errorf("debrief sheet: %v", err)
				}
			}
		})
	}
}

func TestNoBundle(t *testing.T) {
	for _, b := range []evidence.Bundle{nil, (*evidence.EvidenceBundle)(nil), (*evidence.SOC2Bundle)(nil), (*evidence.ExecutiveDebriefBundle)(nil)} {
		if err := csvr.WriteBundle(&bytes.Buffer{}, b); err == nil {
			t.Errorf("%T: written", b)
		}
	}
}
