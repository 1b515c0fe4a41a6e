package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// FuzzEvaluate drives a run of arbitrary steps through every policy type and
// checks the invariants that must hold whatever the input: exact totals, at
// most one inflection, violation on every step after it, and a status
// consistent with the findings.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{30, 30, 30, 30, 30, 30}, uint16(100), uint16(5))
	f.Add([]byte{0, 255, 1, 2, 200}, uint16(1), uint16(1))
	f.Add([]byte{}, uint16(65535), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, threshold, denied uint16) {
		if threshold == 0 {
			threshold = 1
		}
		th := runproof.FormatFixed(int64(threshold), 1)
		e, err := Compile([]runproof.Policy{
			mustPolicy(t, runproof.Policy{Name: "a-cost", Type: runproof.PolicyCostLimit, Threshold: th, Action: runproof.ActionStop}),
			mustPolicy(t, runproof.Policy{Name: "b-tokens", Type: runproof.PolicyTokenLimit, Threshold: th, Action: runproof.ActionWarn}),
			mustPolicy(t, runproof.Policy{Name: "c-steps", Type: runproof.PolicyStepLimit, Threshold: th, Action: runproof.ActionWarn}),
			mustPolicy(t, runproof.Policy{Name: "d-type", Type: runproof.PolicyStepTypeDenied, StepTypes: []string{"t" + runproof.FormatFixed(int64(denied%7), 1)}, Action: runproof.ActionStop}),
			mustPolicy(t, runproof.Policy{Name: "e-expr", Type: runproof.PolicyExpression, Expression: "step.tokens > 200", Action: runproof.ActionWarn}),
		})
		if err != nil {
			t.Fatal(err)
		}
		steps := make([]runproof.Step, len(data))
		var want runproof.Totals
		for i, b := range data {
			steps[i] = runproof.Step{Index: int64(i), Timestamp: time.Unix(int64(i), 0),
				StepType: "t" + runproof.FormatFixed(int64(b%7), 1), InputTokens: int64(b), OutputTokens: int64(b / 2),
				CostMicrocents: int64(b) * 12_345, DurationMicros: int64(b) * 7}
			want = want.Add(steps[i])
		}
		res := run(t, e, steps)
		// The inflection is the first step whose running cost goes strictly
		// over the cost limit, or whose type is denied: the two stop
		// policies. An evaluator that never stops fails here.
		wantInflection, deniedType := -1, "t"+runproof.FormatFixed(int64(denied%7), 1)
		var cost int64
		for i, s := range steps {
			cost += s.CostMicrocents
			if cost > int64(threshold)*runproof.MicrocentsPerCent || s.StepType == deniedType {
				wantInflection = i
				break
			}
		}
		if got := slices.IndexFunc(res, func(r Result) bool { return r.IsInflection }); got != wantInflection {
			t.Fatalf("inflection at step %d, want %d", got, wantInflection)
		}
		inflections := 0
		for i, r := range res {
			if r.IsInflection {
				inflections++
				if r.Status != runproof.StepViolation || r.Violation == nil {
					t.Fatalf("step %d: inflection without violation: %+v", i, r)
				}
			} else if inflections > 0 && r.Status != runproof.StepViolation {
				t.Fatalf("step %d after the stop is %s", i, r.Status)
			}
			if r.Status == runproof.StepOK && len(r.Findings) > 0 {
				t.Fatalf("step %d ok with findings %+v", i, r.Findings)
			}
			if r.Status != runproof.StepOK && len(r.Findings) == 0 {
				t.Fatalf("step %d %s without findings", i, r.Status)
			}
		}
		if inflections > 1 {
			t.Fatalf("%d inflections", inflections)
		}
		if len(res) > 0 && res[len(res)-1].Totals != want {
			t.Fatalf("totals %+v, want %+v", res[len(res)-1].Totals, want)
		}
	})
}
