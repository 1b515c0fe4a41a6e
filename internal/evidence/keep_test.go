package evidence

import "testing"

// TestKeptRowsBounded: a list keeps its rows in memory up to maxKeptRows;
// past it (steps that came while the bundle was built) it lets them go and
// reads every step back from the spool, in order.
func TestKeptRowsBounded(t *testing.T) {
	defer func(n int) { maxKeptRows = n }(maxKeptRows)
	maxKeptRows = 3
	for _, n := range []int64{3, 5} {
		w := newStepWriter(nil, true)
		for i := range n {
			if err := w.add(TraceStepEvidence{StepIndex: i, StepType: "llm", Status: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		if kept := w.list.rows != nil; kept != (n <= 3) {
			t.Errorf("%d steps: rows kept %v", n, kept)
		}
		var got int64
		for s, err := range w.list.All() {
			if err != nil || s.StepIndex != got {
				t.Fatalf("%d steps: step %d read as %d, %v", n, got, s.StepIndex, err)
			}
			got++
		}
		if got != n || w.list.Len() != n {
			t.Errorf("%d steps: %d read, Len %d", n, got, w.list.Len())
		}
	}
}
