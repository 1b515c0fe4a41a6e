package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

func mustPolicy(t testing.TB, p runproof.Policy) runproof.Policy {
	t.Helper()
	p, err := Normalize(p)
	if err != nil {
		t.Fatalf("Normalize(%s): %v", p.Name, err)
	}
	p.ID, p.Version = "id-"+p.Name, 1
	return p
}

// storedPolicy is a policy as an older runproof may have stored it, under
// looser limits: not checked by Normalize.
func storedPolicy(p runproof.Policy) runproof.Policy {
	p.ID, p.Version = "id-"+p.Name, 1
	return p
}

// run evaluates steps one after another the way the service does: a stop
// decision makes the run stopped for every later step.
func run(t testing.TB, e *Evaluator, steps []runproof.Step) []Result {
	t.Helper()
	var tot runproof.Totals
	stopped := false
	out := make([]Result, len(steps))
	for i, s := range steps {
		r := e.Evaluate(Input{Before: tot, Stopped: stopped, Step: s})
		out[i], tot = r, r.Totals
		stopped = stopped || r.IsInflection
	}
	return out
}

func costSteps(n int, cents int64) []runproof.Step {
	steps := make([]runproof.Step, n)
	for i := range steps {
		steps[i] = runproof.Step{Index: int64(i), StepType: "llm", Timestamp: time.Unix(int64(i), 0),
			CostMicrocents: cents * runproof.MicrocentsPerCent, InputTokens: 10, OutputTokens: 5, DurationMicros: 1000}
	}
	return steps
}

func TestEvaluateCostLimit(t *testing.T) {
	e, err := Compile([]runproof.Policy{
		mustPolicy(t, runproof.Policy{Name: "cost", Type: runproof.PolicyCostLimit, Threshold: "100", Action: runproof.ActionStop}),
		mustPolicy(t, runproof.Policy{Name: "tokens", Type: runproof.PolicyTokenLimit, Threshold: "100000", Action: runproof.ActionWarn}),
	})
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, e, costSteps(6, 30))
	want := []runproof.StepStatus{"ok", "ok", "warning", "violation", "violation", "violation"}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("step %d: status %s, want %s", i, r.Status, want[i])
		}
		if r.IsInflection != (i == 3) {
			t.Errorf("step %d: is_inflection %v", i, r.IsInflection)
		}
	}
	v := res[3].Violation
	if v == nil || v.Threshold != "100" || v.Actual != "120" || v.PolicyName != "cost" {
		t.Fatalf("violation = %+v, want cost 100 → 120", v)
	}
}

// A step under way at the stop is judged as any step but is never the
// inflection, and has no after_stop finding; one the agent began after is
// a violation for being sent after the stop.
func TestEvaluateUnderWay(t *testing.T) {
	e, err := Compile([]runproof.Policy{
		mustPolicy(t, runproof.Policy{Name: "cost", Type: runproof.PolicyCostLimit, Threshold: "100", Action: runproof.ActionStop}),
		mustPolicy(t, runproof.Policy{Name: "no shell", Type: runproof.PolicyStepTypeDenied, StepTypes: []string{"shell"}, Action: runproof.ActionStop}),
	})
	if err != nil {
		t.Fatal(err)
	}
	step := runproof.Step{StepType: "invoke_agent", CostMicrocents: 1}
	shell := runproof.Step{StepType: "shell"}
	tests := []struct {
		name       string
		before     int64 // cents spent before
		step       runproof.Step
		underWay   bool
		status     runproof.StepStatus
		afterStop  bool
		inflection bool
	}{
		{"went on, under the limits", 0, step, false, runproof.StepViolation, true, false},
		{"under way, under the limits", 0, step, true, runproof.StepOK, false, false},
		{"under way, the run over its limit", 120, step, true, runproof.StepViolation, false, false},
		{"under way, a denied step", 0, shell, true, runproof.StepViolation, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := runproof.Totals{Steps: 3, CostMicrocents: tc.before * runproof.MicrocentsPerCent}
			r := e.Evaluate(Input{Before: before, Stopped: true, UnderWay: tc.underWay, Step: tc.step})
			afterStop := slices.ContainsFunc(r.Findings, func(f runproof.Finding) bool { return f.Outcome == runproof.OutcomeAfterStop })
			if r.Status != tc.status || afterStop != tc.afterStop || r.IsInflection != tc.inflection || r.Violation != nil {
				t.Errorf("status %s, after_stop %v, inflection %v, violation %v; want %s, %v, %v, none",
					r.Status, afterStop, r.IsInflection, r.Violation, tc.status, tc.afterStop, tc.inflection)
			}
		})
	}
}

func TestEvaluateRules(t *testing.T) {
	steps := costSteps(5, 1)
	steps[2].StepType = "shell"
	tests := []struct {
		name   string
		policy runproof.Policy
		want   []runproof.StepStatus
	}{
		{"warn over tokens stays warning", runproof.Policy{Type: runproof.PolicyTokenLimit, Threshold: "40", Action: runproof.ActionWarn},
			[]runproof.StepStatus{"ok", "ok", "warning", "warning", "warning"}},
		{"step limit", runproof.Policy{Type: runproof.PolicyStepLimit, Threshold: "3", Action: runproof.ActionStop},
			[]runproof.StepStatus{"ok", "ok", "warning", "violation", "violation"}},
		{"duration limit ms", runproof.Policy{Type: runproof.PolicyDurationLimit, Threshold: "2.5", Action: runproof.ActionStop},
			[]runproof.StepStatus{"ok", "warning", "violation", "violation", "violation"}},
		{"denied step type", runproof.Policy{Type: runproof.PolicyStepTypeDenied, StepTypes: []string{"shell"}, Action: runproof.ActionStop},
			[]runproof.StepStatus{"ok", "ok", "violation", "violation", "violation"}},
		{"expression", runproof.Policy{Type: runproof.PolicyExpression, Expression: `step.step_type == "shell" && run.cost_cents >= 3.0`, Action: runproof.ActionWarn},
			[]runproof.StepStatus{"ok", "ok", "warning", "ok", "ok"}},
		{"expression comparing a double with an int", runproof.Policy{Type: runproof.PolicyExpression, Expression: `run.cost_cents >= 3`, Action: runproof.ActionWarn},
			[]runproof.StepStatus{"ok", "ok", "warning", "warning", "warning"}},
		{"regular expression", runproof.Policy{Type: runproof.PolicyExpression, Expression: `step.step_type.matches("^(sh|bash)ell$")`, Action: runproof.ActionStop},
			[]runproof.StepStatus{"ok", "ok", "violation", "violation", "violation"}},
		{"regular expression, called as a function", runproof.Policy{Type: runproof.PolicyExpression, Expression: `matches(step.step_type, "^sh")`, Action: runproof.ActionWarn},
			[]runproof.StepStatus{"ok", "ok", "warning", "ok", "ok"}},
		{"dyn of a string", runproof.Policy{Type: runproof.PolicyExpression, Expression: `dyn(step.step_type) == "shell" && run.cost_cents >= 3.0`, Action: runproof.ActionWarn},
			[]runproof.StepStatus{"ok", "ok", "warning", "ok", "ok"}},
		{"membership of a string in a list", runproof.Policy{Type: runproof.PolicyExpression, Expression: `step.step_type in ["shell", "exec"] && [1, 2].all(x, x != 3)`, Action: runproof.ActionWarn},
			[]runproof.StepStatus{"ok", "ok", "warning", "ok", "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.policy.Name = "p"
			e, err := Compile([]runproof.Policy{mustPolicy(t, tt.policy)})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range run(t, e, steps) {
				if r.Status != tt.want[i] {
					t.Errorf("step %d: %s, want %s", i, r.Status, tt.want[i])
				}
			}
		})
	}
}

// TestEvaluateFailingExpression: an expression that fails on a step is a
// finding of the step, which is a warning: never a violation, an inflection
// or an error of the call, whatever the policy's action.
func TestEvaluateFailingExpression(t *testing.T) {
	e, err := Compile([]runproof.Policy{
		mustPolicy(t, runproof.Policy{Name: "ratio", Type: runproof.PolicyExpression, Expression: "run.tokens / step.tokens > 10", Action: runproof.ActionStop}),
	})
	if err != nil {
		t.Fatal(err)
	}
	steps := costSteps(3, 1)
	steps[1].InputTokens, steps[1].OutputTokens = 0, 0
	res := run(t, e, steps)
	if res[0].Status != runproof.StepOK || res[2].Status != runproof.StepOK {
		t.Fatalf("steps 0 and 2: %s, %s; want ok", res[0].Status, res[2].Status)
	}
	r := res[1]
	if r.Status != runproof.StepWarning || r.IsInflection || r.Violation != nil || len(r.Findings) != 1 {
		t.Fatalf("step 1: %+v, want a warning with one finding", r)
	}
	f := r.Findings[0]
	if f.Outcome != runproof.OutcomeFailed || f.PolicyName != "ratio" || !strings.Contains(f.Error, "division by zero") {
		t.Fatalf("finding %+v", f)
	}
	if r.Totals.Steps != 2 || r.Totals.Tokens() != 15 {
		t.Fatalf("totals %+v", r.Totals)
	}
}

// TestEvaluateNonFiniteDoubles: CEL computes with doubles as IEEE 754
// does, so that a division of a double by zero gives an infinity (which
// compares greater than any limit) or not a number (which compares false
// with anything): runproof makes such arithmetic an error, which fails
// the expression on the step as an int's division by zero does, or is
// absorbed by && and || as an int's is, in comprehensions too.
func TestEvaluateNonFiniteDoubles(t *testing.T) {
	for _, c := range []struct {
		expr   string
		status runproof.StepStatus // of the free step
		failed bool
	}{
		{"run.cost_cents / step.cost_cents > 10.0", runproof.StepWarning, true},                                // +Inf > 10: would stop
		{"(step.cost_cents - step.cost_cents) / step.cost_cents > 1.0", runproof.StepWarning, true},            // NaN > 1: would pass unseen
		{"run.cost_cents * 1e308 * 10.0 > 1.0", runproof.StepWarning, true},                                    // an overflow
		{"[step.cost_cents, 1.0].filter(d, run.cost_cents / d > 10.0).size() > 0", runproof.StepWarning, true}, // in a comprehension
		{"run.cost_cents / step.cost_cents > 10.0 && step.cost_cents > 0.0", runproof.StepOK, false},           // the guard decides, as for ints
		{"run.cost_cents / step.cost_cents > 10.0 || step.cost_cents == 0.0", runproof.StepViolation, false},
		{"run.cost_cents / 2.0 > 1000.0", runproof.StepOK, false},            // finite
		{`run.cost_cents < double("NaN")`, runproof.StepWarning, true},       // a conversion: would pass unseen
		{`double("-Infinity") < run.cost_cents`, runproof.StepWarning, true}, // would stop
	} {
		e, err := Compile([]runproof.Policy{
			mustPolicy(t, runproof.Policy{Name: "ratio", Type: runproof.PolicyExpression, Expression: c.expr, Action: runproof.ActionStop}),
		})
		if err != nil {
			t.Fatal(err)
		}
		steps := costSteps(2, 1)
		steps[1].CostMicrocents = 0
		r := run(t, e, steps)[1]
		failed := len(r.Findings) == 1 && r.Findings[0].Outcome == runproof.OutcomeFailed &&
			strings.Contains(r.Findings[0].Error, "a division by zero, or an overflow")
		if r.Status != c.status || failed != c.failed {
			t.Errorf("%s: the free step %s (failed %v), want %s (failed %v): %+v", c.expr, r.Status, failed, c.status, c.failed, r.Findings)
		}
	}
}

// TestEvaluateRefusedExpression: a stored expression this runproof would
// refuse (stored under looser limits) fails each step with the reason,
// as a warning, and leaves the other policies of the snapshot judging.
func TestEvaluateRefusedExpression(t *testing.T) {
	e, err := Compile([]runproof.Policy{
		{ID: "a", Name: "pattern from the step", Type: runproof.PolicyExpression, Expression: `"shell".matches(step.step_type)`, Action: runproof.ActionStop},
		{ID: "b", Name: "too long", Type: runproof.PolicyExpression, Expression: "true" + strings.Repeat(" && true", 600), Action: runproof.ActionStop},
		mustPolicy(t, runproof.Policy{Name: "steps", Type: runproof.PolicyStepLimit, Threshold: "1", Action: runproof.ActionStop}),
	})
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, e, costSteps(2, 1))
	f := res[0].Findings
	if res[0].Status != runproof.StepWarning || len(f) != 3 || f[0].Outcome != runproof.OutcomeFailed ||
		!strings.Contains(f[0].Error, "the expression is refused: ") || !strings.Contains(f[0].Error, "string literal") ||
		f[1].Outcome != runproof.OutcomeFailed || !strings.Contains(f[1].Error, "the expression is refused: must be at most 4096 bytes") {
		t.Fatalf("step 0: %+v", res[0])
	}
	if res[1].Status != runproof.StepViolation || !res[1].IsInflection {
		t.Fatalf("step 1: %+v, want the step limit's inflection", res[1])
	}
}

func TestNormalizeRefuses(t *testing.T) {
	tests := []struct {
		policy runproof.Policy
		field  string
	}{
		{runproof.Policy{Name: "", Type: runproof.PolicyCostLimit, Threshold: "1", Action: "stop"}, "name"},
		{runproof.Policy{Name: "x", Type: "nope", Action: "stop"}, "type"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "-1", Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyTokenLimit, Threshold: "1.5", Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "0", Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "1", Action: "halt"}, "action"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyStepTypeDenied, Action: "stop"}, "step_types"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: "step.cost_cents +", Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: "step.cost_cents + 1.0", Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: "unknown_var > 1", Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: "true || " + strings.Repeat("1 < 2 || ", 500) + "false", Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: `step.step_type.matches(run.agent_id)`, Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: `matches("x", step.step_type)`, Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: `step.step_type.matches("(?:a*){1000}b")`, Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: `step.step_type.matches("(")`, Action: "stop"}, "expression"},
		// Lists compared whole: nested by repetition, cheap in CEL's cost, minutes of work.
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Action: "stop",
			Expression: `[[1, 1, 1]].map(a, [1, 1, 1].map(i, a)).map(b, [1, 1, 1].map(i, b)).all(r, r == r)`}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: `[[1]].all(r, r in [r])`, Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: `{"a": 1} != {"a": 2}`, Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: `dyn([1]) == dyn([1])`, Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "5", Expression: "true", Action: "stop"}, "expression"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "5", StepTypes: []string{"a"}, Action: "stop"}, "step_types"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyStepTypeDenied, Threshold: "5", StepTypes: []string{"a"}, Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Threshold: "5", Expression: "true", Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyStepTypeDenied, StepTypes: make([]string, 101), Action: "stop"}, "step_types"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyStepTypeDenied, StepTypes: []string{strings.Repeat("t", 201)}, Action: "stop"}, "step_types[0]"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyStepTypeDenied, StepTypes: []string{"tool:shell "}, Action: "stop"}, "step_types[0]"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "1.0000001", Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "0.0000001", Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyCostLimit, Threshold: "1000000000.000001", Action: "stop"}, "threshold"},
		{runproof.Policy{Name: "x", Type: runproof.PolicyDurationLimit, Threshold: "1000000000000.001", Action: "stop"}, "threshold"},
	}
	for _, tt := range tests {
		_, err := Normalize(tt.policy)
		fields := runproof.ErrorFields(err)
		if len(fields) == 0 || fields[0].Field != tt.field {
			t.Errorf("Normalize(%+v) = %v, want an error on %q", tt.policy, err, tt.field)
		}
	}
}

// TestThresholdBound: the bound a threshold past it is told is the one
// that holds, however far past it.
func TestThresholdBound(t *testing.T) {
	for typ, bound := range map[runproof.PolicyType]string{runproof.PolicyCostLimit: "1000000000", runproof.PolicyDurationLimit: "1000000000000"} {
		for _, th := range []string{"1e16", "5" + bound[1:], bound + ".5"} {
			_, err := Normalize(runproof.Policy{Name: "x", Type: typ, Threshold: th, Action: "stop"})
			if f := runproof.ErrorFields(err); len(f) != 1 || f[0].Field != "threshold" || f[0].Message != "must be at most "+bound {
				t.Errorf("%s of %s: %v, want the threshold at most %s", typ, th, err, bound)
			}
		}
	}
}

// TestWholeThresholds: a count's threshold written with a zero fraction or
// an exponent is whole, and normalised; a fraction is refused as such.
func TestWholeThresholds(t *testing.T) {
	for in, want := range map[string]string{"3": "3", "3.0": "3", "1e1": "10", "0.5e1": "5"} {
		p, err := Normalize(runproof.Policy{Name: "x", Type: runproof.PolicyStepLimit, Threshold: in, Action: "stop"})
		if err != nil || p.Threshold != want {
			t.Errorf("step limit %s: %q, %v; want %s", in, p.Threshold, err, want)
		}
	}
	for in, says := range map[string]string{"3.5": "must be a whole number", "2000000000.5": "must be a whole number", "abc": "not a number",
		"1e30": "must be at most"} {
		_, err := Normalize(runproof.Policy{Name: "x", Type: runproof.PolicyTokenLimit, Threshold: in, Action: "stop"})
		if !strings.Contains(fmt.Sprint(err), says) {
			t.Errorf("token limit %s: %v, want it to say %q", in, err, says)
		}
	}
}

func TestRiskLevels(t *testing.T) {
	c := int64(runproof.MicrocentsPerCent)
	tests := []struct {
		in   RiskInput
		want runproof.RiskLevel
	}{
		{RiskInput{Type: runproof.PolicyTokenLimit, Threshold: 100, Actual: 110}, runproof.RiskLow},
		{RiskInput{Type: runproof.PolicyCostLimit, Threshold: 100 * c, Actual: 120 * c}, runproof.RiskMedium},
		{RiskInput{Type: runproof.PolicyCostLimit, Threshold: 100 * c, Actual: 150 * c}, runproof.RiskHigh},
		{RiskInput{Type: runproof.PolicyStepTypeDenied}, runproof.RiskHigh},
		{RiskInput{Type: runproof.PolicyCostLimit, Threshold: 5000 * c, Actual: 20000 * c, CostMicrocents: 20000 * c}, runproof.RiskCritical},
	}
	for _, tt := range tests {
		if got := Risk(tt.in); got != tt.want {
			t.Errorf("Risk(%+v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestExpressionVariables: each variable holds its value for the step, run
// totals including the step.
func TestExpressionVariables(t *testing.T) {
	want := map[string]string{
		"step.step_index": "4", "step.step_type": `"llm"`, "step.input_tokens": "10", "step.output_tokens": "5", "step.tokens": "15",
		"step.cost_cents": "2.5", "step.duration_ms": "1.5", "run.agent_id": `"a1"`, "run.steps": "5", "run.input_tokens": "50",
		"run.output_tokens": "25", "run.tokens": "75", "run.cost_cents": "12.5", "run.duration_ms": "7.5",
	}
	var policies []runproof.Policy
	for _, v := range variables {
		policies = append(policies, mustPolicy(t, runproof.Policy{Name: v.name, Type: runproof.PolicyExpression,
			Expression: v.name + " == " + want[v.name], Action: runproof.ActionWarn}))
	}
	if len(want) != len(variables) {
		t.Fatalf("%d variables, %d values to check", len(variables), len(want))
	}
	e, err := Compile(policies)
	if err != nil {
		t.Fatal(err)
	}
	r := e.Evaluate(Input{AgentID: "a1",
		Before: runproof.Totals{Steps: 4, InputTokens: 40, OutputTokens: 20, CostMicrocents: 10 * runproof.MicrocentsPerCent, DurationMicros: 6000},
		Step:   runproof.Step{Index: 4, StepType: "llm", InputTokens: 10, OutputTokens: 5, CostMicrocents: 5 * runproof.MicrocentsPerCent / 2, DurationMicros: 1500}})
	hit := map[string]bool{}
	for _, f := range r.Findings {
		hit[f.PolicyName] = f.Outcome == runproof.OutcomeExceeded
	}
	for _, v := range variables {
		if !hit[v.name] {
			t.Errorf("%s == %s does not hold", v.name, want[v.name])
		}
	}
}

// TestExpressionUnknownVariable: a field the step or run does not have is
// refused with the list of the variables, since CEL names only the first
// part of the path ("undeclared reference to 'step'"); a function that is
// not there is named as one.
func TestExpressionUnknownVariable(t *testing.T) {
	_, _, err := compileExpression("step.foo > 1")
	if err == nil || !strings.Contains(err.Error(), "undeclared reference") ||
		!strings.Contains(err.Error(), "(the variables are step.step_index, step.step_type,") ||
		!strings.Contains(err.Error(), "run.duration_ms, and each always has a value)") {
		t.Errorf("step.foo: %v", err)
	}
	if _, _, err := compileExpression(`step.step_type.lowerAscii() == "x"`); err == nil || !strings.Contains(err.Error(), "lowerAscii is not a function here") {
		t.Errorf("an unknown function: %v", err)
	}
	if _, _, err := compileExpression("step.tokens > 1 &&"); err == nil || strings.Contains(err.Error(), "the variables are") {
		t.Errorf("a syntax error: %v", err)
	}
}

// TestStepCostBudget: however many costly expressions a tenant keeps, one
// step is judged at a bounded CEL cost: past MaxStepCost, the expressions
// left are not evaluated, and fail saying why. Stop policies are judged
// first, so a step cannot make a costly warn rule crowd a stop rule out;
// limits are judged all the same.
func TestStepCostBudget(t *testing.T) {
	costly := costlyLoop()
	var ps []runproof.Policy
	for i := range 5 {
		ps = append(ps, mustPolicy(t, runproof.Policy{Name: fmt.Sprint("costly-", i), Type: runproof.PolicyExpression,
			Expression: costly, Action: runproof.ActionWarn}))
	}
	for i := range 50 {
		ps = append(ps, mustPolicy(t, runproof.Policy{Name: fmt.Sprint("cheap-", i), Type: runproof.PolicyExpression,
			Expression: `step.step_type.startsWith("shell")`, Action: runproof.ActionStop}))
	}
	ps = append(ps, mustPolicy(t, runproof.Policy{Name: "cost", Type: runproof.PolicyCostLimit, Threshold: "1", Action: runproof.ActionStop}))
	e, err := Compile(ps)
	if err != nil {
		t.Fatal(err)
	}
	// The 50 cheap stop rules first; then the first costly warn rule,
	// begun below MaxStepCost, and the second, begun below it too, are
	// judged whole, and the three others are not evaluated.
	for _, st := range []string{"llm", "shell:" + strings.Repeat("x", 190)} { // a long step type costs more to judge
		res := e.Evaluate(Input{Step: runproof.Step{StepType: st, CostMicrocents: 2 * runproof.MicrocentsPerCent}})
		var judged, notJudged, stops int
		for _, f := range res.Findings {
			switch {
			case strings.HasPrefix(f.Error, "not judged"):
				notJudged++
			case f.Action == runproof.ActionWarn && f.Outcome == runproof.OutcomeExceeded:
				judged++
			case f.Action == runproof.ActionStop && f.Outcome == runproof.OutcomeExceeded:
				stops++
			}
		}
		wantStops := 1 // the cost limit
		if strings.HasPrefix(st, "shell") {
			wantStops += 50
		}
		if judged != 2 || notJudged != 3 || stops != wantStops {
			t.Errorf("step type %.10s…: %d costly expressions judged, %d not judged, %d stop rules broken; want 2, 3 and %d",
				st, judged, notJudged, stops, wantStops)
		}
		if res.Violation == nil || res.Violation.PolicyName != ps[5].Name && res.Violation.PolicyName != "cost" {
			t.Errorf("step type %.10s…: violation %+v", st, res.Violation)
		}
		if !slices.IsSortedFunc(res.Findings, func(a, b runproof.Finding) int { return indexOf(ps, a) - indexOf(ps, b) }) {
			t.Errorf("step type %.10s…: findings out of the snapshot's order", st)
		}
	}
}

// TestWorstCostRefused: an expression that can cost more than
// MaxExpressionCost on some step (the longest step type, a loop over a
// long list) is refused when it is created, as it would fail there,
// unjudged. One stored by an older runproof is still judged as before,
// up to its cost limit.
func TestWorstCostRefused(t *testing.T) {
	list := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]" }
	for _, src := range []string{
		list(100) + ".all(x, " + list(30) + ".all(y, x + y >= 0))",
		costlyRegex() + ` || step.step_type.matches("^a+$")`,
		`run.agent_id.matches("([a-z]|[0-9]|:){200}$")`,
		"[[1]]" + strings.Repeat(".map(a, a + a)", 40) + ".all(b, 2 in b)",
		list(1000) + ".exists(x, " + list(20) + ".exists(y, x + y == step.tokens))",
		list(80) + ".all(x, size(" + list(80) + " + " + list(80) + ") > 0)",                   // each join costs the list it makes
		list(20) + ".all(x, size(" + list(20) + ".map(y, " + list(20) + ") + [[1]]) > 0)",     // a list a macro made, joined
		"[[1]].map(a, a + a).size() > 0",                                                      // a loop's variable, joined
		`(` + strings.Repeat(`"😀"+`, 150) + `step.step_type).matches("([a-z]|[0-9]|:){60}$")`, // a match's text is counted in bytes
		`"` + strings.Repeat("😀", 400) + `".matches("([a-z]|[0-9]|:){40}$")`,
	} {
		_, err := Normalize(runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: src, Action: runproof.ActionStop})
		if err == nil || !strings.Contains(err.Error(), "can cost up to") && !strings.Contains(err.Error(), "has no bound") {
			t.Errorf("Normalize(%.40s…): %v, want it refused for its cost", src, err)
		}
	}
	// Those that stay within the limit on the longest inputs are taken.
	for _, src := range []string{costlyLoop(), costlyRegex(), `step.step_type.matches("^(shell|exec):[a-z_]+$") && run.agent_id != ""`,
		`string(step.cost_cents).contains("e")`, `string(step.tokens).matches("^9+$")`} {
		if _, err := Normalize(runproof.Policy{Name: "x", Type: runproof.PolicyExpression, Expression: src, Action: runproof.ActionStop}); err != nil {
			t.Errorf("Normalize(%.40s…): %v", src, err)
		}
	}
	e, err := Compile([]runproof.Policy{storedPolicy(runproof.Policy{Name: "old", Type: runproof.PolicyExpression,
		Expression: list(1000) + ".exists(x, " + list(20) + ".exists(y, x + y == step.tokens))", Action: runproof.ActionStop})})
	if err != nil {
		t.Fatal(err)
	}
	for tokens, want := range map[int64]string{2: runproof.OutcomeExceeded, 0: runproof.OutcomeFailed} { // 1 + 1 is found at once; 0 never
		r := e.Evaluate(Input{Step: runproof.Step{StepType: "llm", InputTokens: tokens}})
		if len(r.Findings) != 1 || r.Findings[0].Outcome != want {
			t.Errorf("the stored rule on a step of %d tokens: %+v, want %s", tokens, r.Findings, want)
		}
	}
}

// TestWorstCostBounds: what an expression taken costs on a step is never
// more than its worst cost, for the steps that cost most: the longest step
// types and agent ids, of one-byte and of four-byte characters.
func TestWorstCostBounds(t *testing.T) {
	list := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]" }
	srcs := []string{
		costlyLoop(), costlyRegex(),
		list(30) + ".all(x, size(" + list(30) + " + " + list(30) + ") > 0)",
		list(10) + ".all(x, size(" + list(10) + ".map(y, " + list(10) + ")) > 0)",
		"[step.tokens, run.steps].filter(n, n > 1).map(n, [n, n] + [n]).size() > 0",
		`(` + strings.Repeat(`"😀"+`, 20) + `step.step_type).matches("([a-z]|[0-9]|:){20}$")`,
		`"` + strings.Repeat("😀", 40) + `".matches("([a-z]|[0-9]|:){20}$")`,
		`run.agent_id.matches("^(a|b)+$") && step.step_type.contains(run.agent_id)`,
		`[step.step_type, run.agent_id].exists(s, s.matches("^x+$"))`,
		`string(step.cost_cents).matches("^[0-9.e+-]+$") || string(step.tokens).size() > 3`,
		`string(step.step_type).contains("a") && string(run.agent_id).matches("^(a|b)+$")`,
	}
	texts := []string{strings.Repeat("x", runproof.MaxStepTypeLen), strings.Repeat("😀", runproof.MaxStepTypeLen/4),
		strings.Repeat("ab", runproof.MaxStepTypeLen/2)}
	for _, src := range srcs {
		prg, worst, err := compileExpression(src)
		if err != nil || checkWorstCost(worst) != nil {
			t.Fatalf("%.50s…: %v %v", src, err, checkWorstCost(worst))
		}
		r := rule{program: prg}
		for _, st := range texts {
			for _, agent := range texts {
				_, spent, _ := r.eval(&activation{in: Input{AgentID: agent, Step: runproof.Step{StepType: st, InputTokens: 1 << 52,
					CostMicrocents: -1 << 60}}})
				if spent > worst {
					t.Errorf("%.50s… cost %d on a step, over its worst cost %d", src, spent, worst)
				}
			}
		}
	}
}

// TestRegexCost: a regular expression is charged by its program, not by
// its length: a short pattern that compiles large costs as much as the
// longest step type it may match says, and the rule after it is judged
// only while the step's budget lasts, while an everyday pattern is judged
// on every step.
func TestRegexCost(t *testing.T) {
	var ps []runproof.Policy
	for i := range 3 {
		ps = append(ps, mustPolicy(t, runproof.Policy{Name: fmt.Sprint("big-", i), Type: runproof.PolicyExpression, Expression: costlyRegex(),
			Action: runproof.ActionWarn}))
	}
	ps = append(ps, mustPolicy(t, runproof.Policy{Name: "shell", Type: runproof.PolicyExpression, // a stop rule: judged first
		Expression: `step.step_type.matches("^(shell|exec):[a-z_]+$")`, Action: runproof.ActionStop}))
	e, err := Compile(ps)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := func(st string) map[string]string {
		res := e.Evaluate(Input{Step: runproof.Step{StepType: st}})
		out := map[string]string{}
		for _, f := range res.Findings {
			out[f.PolicyName] = string(f.Outcome) + " " + f.Error
		}
		if res.Violation != nil {
			out["violation"] = res.Violation.PolicyName
		}
		return out
	}
	long := strings.Repeat("a", 199) + "!"
	got := outcomes(long)
	if got["big-0"] != "" || !strings.HasPrefix(got["big-1"], "failed not judged") || !strings.HasPrefix(got["big-2"], "failed not judged") ||
		got["shell"] != "" || got["violation"] != "" {
		t.Errorf("a large pattern on a long step type: %v; want shell judged and not broken, the first big judged (not matching), the others not judged", got)
	}
	if got := outcomes("shell:rm_rf"); got["violation"] != "shell" || len(got) != 2 {
		t.Errorf("shell:rm_rf: %v, want shell broken, every rule judged", got)
	}
	if got := outcomes("exec:" + strings.Repeat("x", 190)); got["violation"] != "shell" {
		t.Errorf("a long exec step: %v, want shell broken", got)
	}
}

// indexOf is the place of a finding's policy in ps.
func indexOf(ps []runproof.Policy, f runproof.Finding) int {
	return slices.IndexFunc(ps, func(p runproof.Policy) bool { return p.ID == f.PolicyID })
}

// BenchmarkEvaluateCostliest judges a step against the costliest rules a
// tenant can keep: expressions that each cost nearly MaxExpressionCost,
// more than the step's budget lets run. Its time per step bounds how long
// one step holds the database's writer while it is judged.
func BenchmarkEvaluateCostliest(b *testing.B) {
	costly := costlyLoop()
	var ps []runproof.Policy
	for i := range 200 {
		ps = append(ps, mustPolicy(b, runproof.Policy{Name: fmt.Sprint("costly-", i), Type: runproof.PolicyExpression,
			Expression: costly, Action: runproof.ActionWarn}))
	}
	e, err := Compile(ps)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Step: runproof.Step{StepType: "llm"}}
	for b.Loop() {
		e.Evaluate(in)
	}
}

func BenchmarkEvaluateCostliestRegex(b *testing.B) {
	var ps []runproof.Policy
	for i := range 20 {
		ps = append(ps, mustPolicy(b, runproof.Policy{Name: fmt.Sprint("regex-", i), Type: runproof.PolicyExpression,
			Expression: costlyRegex(), Action: runproof.ActionWarn}))
	}
	e, err := Compile(ps)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Step: runproof.Step{StepType: strings.Repeat("a", 199) + "!"}}
	for b.Loop() {
		e.Evaluate(in)
	}
}

// costlyLoop is the costliest loop over a list a policy may hold: a list
// of n elements against itself, n as large as MaxExpressionCost lets it.
func costlyLoop() string {
	loop := func(n int) string {
		l := "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
		return l + ".all(x, " + l + ".all(y, x == y))"
	}
	return largest(loop)
}

// largest is expr(n) for the largest n whose worst cost is within
// MaxExpressionCost.
func largest(expr func(n int) string) string {
	n := 1
	for {
		if _, worst, err := compileExpression(expr(n + 1)); err != nil || worst > MaxExpressionCost {
			return expr(n)
		}
		n++
	}
}

// costlyRegex is the costliest match a policy may hold against the step
// type: a pattern whose program is as large as MaxExpressionCost lets it be
// on the longest step type.
func costlyRegex() string {
	match := func(n int) string { return fmt.Sprintf(`step.step_type.matches("([a-z]|[0-9]|:){%d}$")`, n) }
	return largest(match)
}

// TestEveryLimitFires: each limit type compares a total of its own with
// its threshold, has a unit, and its overshoot raises the risk grade. A
// type added to runproof.PolicyTypes but not to LimitValue would never
// fire.
func TestEveryLimitFires(t *testing.T) {
	big := runproof.Totals{Steps: 1000, InputTokens: 1e9, OutputTokens: 1e9,
		CostMicrocents: 1e6 * runproof.MicrocentsPerCent, DurationMicros: 1e12}
	step := runproof.Step{Index: 1000, StepType: "llm", Timestamp: time.Unix(0, 0), InputTokens: 1, CostMicrocents: 1, DurationMicros: 1}
	for _, typ := range runproof.PolicyTypes {
		if !typ.IsLimit() {
			continue
		}
		t.Run(string(typ), func(t *testing.T) {
			if typ.Unit() == "" {
				t.Errorf("%s has no unit", typ)
			}
			e, err := Compile([]runproof.Policy{mustPolicy(t, runproof.Policy{Name: "cap", Type: typ, Threshold: "10", Action: runproof.ActionStop})})
			if err != nil {
				t.Fatal(err)
			}
			r := e.Evaluate(Input{AgentID: "a", Before: big, Step: step})
			if r.Violation == nil || r.Status != runproof.StepViolation {
				t.Fatalf("%s of 10 not broken by totals far past it: %+v", typ, r)
			}
			threshold, actual := FixedValues(*r.Violation)
			if threshold <= 0 || actual <= threshold {
				t.Errorf("%s: threshold %d, actual %d in its unit", typ, threshold, actual)
			}
			if g := Grading(RiskInput{Type: typ, Threshold: threshold, Actual: actual}); !g.Overshoot {
				t.Errorf("%s: totals far past its threshold graded %+v, not as overshot", typ, g)
			}
		})
	}
}

// TestGravestViolation: a step that breaks several stop policies opens the
// incident of the gravest breach, whatever the policies are named; of
// breaches alike, the first in snapshot order.
func TestGravestViolation(t *testing.T) {
	e, err := Compile([]runproof.Policy{
		mustPolicy(t, runproof.Policy{Name: "a-cost", Type: runproof.PolicyCostLimit, Threshold: "1", Action: runproof.ActionStop}),
		mustPolicy(t, runproof.Policy{Name: "b-cost", Type: runproof.PolicyCostLimit, Threshold: "1", Action: runproof.ActionStop}),
		mustPolicy(t, runproof.Policy{Name: "z-denied", Type: runproof.PolicyStepTypeDenied, StepTypes: []string{"shell"}, Action: runproof.ActionStop}),
	})
	if err != nil {
		t.Fatal(err)
	}
	shell := runproof.Step{StepType: "shell", CostMicrocents: 11 * runproof.MicrocentsPerCent / 10}
	if r := e.Evaluate(Input{Step: shell}); r.Violation == nil || r.Violation.PolicyName != "z-denied" || len(r.Findings) != 3 {
		t.Errorf("violation %+v, want z-denied (high) over the cost limits (medium)", r.Violation)
	}
	llm := runproof.Step{StepType: "llm", CostMicrocents: 11 * runproof.MicrocentsPerCent / 10}
	if r := e.Evaluate(Input{Step: llm}); r.Violation == nil || r.Violation.PolicyName != "a-cost" {
		t.Errorf("violation %+v, want a-cost, the first of two alike", r.Violation)
	}
}

// TestListJoinsCharged: a list joined to itself again and again stands for
// millions of elements after a few dozen joins; each join is charged the
// length of the list it makes, so such a rule (stored by an older
// runproof: it is refused now) fails at its cost limit at once instead of
// walking them.
func TestListJoinsCharged(t *testing.T) {
	src := "[[1]]" + strings.Repeat(".map(a, a + a)", 40) + ".all(b, 2 in b)"
	e, err := Compile([]runproof.Policy{storedPolicy(runproof.Policy{Name: "joins", Type: runproof.PolicyExpression, Expression: src, Action: runproof.ActionStop})})
	if err != nil {
		t.Fatal(err)
	}
	r := e.Evaluate(Input{Step: runproof.Step{StepType: "llm"}})
	if len(r.Findings) != 1 || r.Findings[0].Outcome != runproof.OutcomeFailed || !strings.Contains(r.Findings[0].Error, "cost") {
		t.Errorf("findings %+v, want the rule failed at its cost limit", r.Findings)
	}
}

// TestCheckStopCost: stop expressions are refused once the tenant's could
// cost more together than a step's budget, so that every stop rule is
// judged on every step; warn rules and limits are not held to it, and a
// new version takes its name's place.
func TestCheckStopCost(t *testing.T) {
	costly := costlyLoop() // nearly MaxExpressionCost: two are too many
	stop := func(name, src string) runproof.Policy {
		return mustPolicy(t, runproof.Policy{Name: name, Type: runproof.PolicyExpression, Expression: src, Action: runproof.ActionStop})
	}
	warn := mustPolicy(t, runproof.Policy{Name: "w", Type: runproof.PolicyExpression, Expression: costly, Action: runproof.ActionWarn})
	active := []runproof.Policy{stop("a", costly), warn}
	if err := CheckStopCost(active, []runproof.Policy{stop("b", costly)}, nil); runproof.ErrorCode(err) != runproof.EINVALID ||
		!strings.Contains(err.Error(), `stop expressions with "b" (2 in all) could cost`) {
		t.Errorf("a second costly stop rule: %v, want it refused", err)
	}
	for name, added := range map[string][]runproof.Policy{
		"a new version of a":   {stop("a", costly)},
		"a cheap stop rule":    {stop("c", `step.step_type == "shell"`)},
		"another warn rule":    {warn},
		"a limit":              {mustPolicy(t, runproof.Policy{Name: "l", Type: runproof.PolicyStepLimit, Threshold: "5", Action: runproof.ActionStop})},
		"a made warn, b added": {mustPolicy(t, runproof.Policy{Name: "a", Type: runproof.PolicyExpression, Expression: costly, Action: runproof.ActionWarn}), stop("b", costly)},
	} {
		if err := CheckStopCost(active, added, StopCosts(active)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestWorstCostBoundsRandom: as TestWorstCostBounds, for expressions made
// at random of lists, macros, joins, matches and conversions.
func TestWorstCostBoundsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 23))
	list := func() string {
		n := rng.IntN(12)
		items := make([]string, n)
		for i := range items {
			items[i] = []string{"1", "step.tokens", "run.steps", "2"}[rng.IntN(4)]
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	text := func() string {
		return []string{"step.step_type", "run.agent_id", "string(step.cost_cents)", "string(run.tokens)", `"😀x"`,
			`(step.step_type + "😀")`, "string(run.cost_cents)", "string(step.step_type)"}[rng.IntN(8)]
	}
	var cond func(depth int) string
	cond = func(depth int) string {
		if depth == 0 {
			switch rng.IntN(4) {
			case 0:
				return fmt.Sprintf(`%s.matches("^([a-z]|😀){%d}")`, text(), 1+rng.IntN(8))
			case 1:
				return text() + ".contains(" + text() + ")"
			case 2:
				return "size(" + list() + " + " + list() + ") > 2"
			}
			return "step.tokens > 3"
		}
		v := fmt.Sprint("v", depth)
		switch rng.IntN(5) {
		case 0:
			return list() + ".all(" + v + ", " + cond(depth-1) + ")"
		case 1:
			return list() + ".exists(" + v + ", " + cond(depth-1) + ")"
		case 2:
			return "size(" + list() + ".map(" + v + ", [" + v + ", 1] + [2])) > 1 && " + cond(depth-1)
		case 3:
			return "size(" + list() + ".filter(" + v + ", " + cond(depth-1) + ")) >= 0"
		}
		return cond(depth-1) + " || " + cond(depth-1)
	}
	texts := []string{strings.Repeat("x", runproof.MaxStepTypeLen), strings.Repeat("😀", runproof.MaxStepTypeLen/4), "a"}
	checked := 0
	for range 300 {
		src := cond(1 + rng.IntN(3))
		prg, worst, err := compileExpression(src)
		if err != nil || checkWorstCost(worst) != nil {
			continue
		}
		checked++
		r := rule{program: prg}
		for _, st := range texts {
			for _, agent := range texts {
				for _, tokens := range []int64{0, 5, 1 << 52} {
					_, spent, _ := r.eval(&activation{in: Input{AgentID: agent, Step: runproof.Step{StepType: st, InputTokens: tokens,
						CostMicrocents: -tokens*7 - 1, DurationMicros: tokens * 3}},
						t: runproof.Totals{Steps: tokens, InputTokens: tokens, CostMicrocents: tokens * 11}})
					if spent > worst {
						t.Fatalf("%s: cost %d on a step, over its worst cost %d", src, spent, worst)
					}
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d of 300 expressions taken: the test checks too few", checked)
	}
}
