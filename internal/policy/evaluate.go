package policy

import (
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"

	"github.com/runproof/runproof/internal/runproof"
)

// Evaluator judges steps against one snapshot. It is safe for concurrent use.
type Evaluator struct {
	rules []rule
	// order is the order the rules are judged in: the stop policies, then
	// the warn ones, each in the snapshot's order. Those judged first
	// spend the CEL cost budget a step's expressions share (MaxStepCost)
	// first, so a step cannot make a costly warn rule crowd a stop rule
	// out.
	order []int
}

type rule struct {
	policy    runproof.Policy
	threshold int64       // in the type's fixed-point unit (limits only)
	program   cel.Program // expression policies only
	refused   error       // why the expression does not compile: it fails every step
}

// Compile prepares a snapshot's policies for evaluation, in the snapshot's
// order (by name), which is also the order findings are reported in.
func Compile(policies []runproof.Policy) (*Evaluator, error) {
	e := &Evaluator{rules: make([]rule, 0, len(policies))}
	for _, p := range policies {
		r := rule{policy: p}
		switch {
		case p.Type.IsLimit():
			n, err := runproof.ParseFixed(p.Threshold, Scale(p.Type))
			if err != nil {
				return nil, fmt.Errorf("policy %q: threshold: %w", p.Name, err)
			}
			r.threshold = n
		case p.Type == runproof.PolicyExpression:
			// A stored expression this runproof refuses (stored by an
			// older one, under looser limits) fails as one that fails at
			// run time: each step gets a warning saying why, and the
			// other policies still judge it.
			r.program, _, r.refused = compileExpression(p.Expression)
		}
		e.rules = append(e.rules, r)
	}
	for _, stop := range []bool{true, false} {
		for i, r := range e.rules {
			if (r.policy.Action == runproof.ActionStop) == stop {
				e.order = append(e.order, i)
			}
		}
	}
	return e, nil
}

// Input is one step to judge and the run it belongs to.
type Input struct {
	AgentID string
	Before  runproof.Totals // the run's totals before this step
	Stopped bool            // the run was already stopped before this step
	// UnderWay, with Stopped, is a step that was under way when the step
	// that stopped the run began: it was under way then, so it does not show the agent
	// going on after the stop. It is judged as any step, but is never the
	// inflection: the run has one.
	UnderWay bool
	Step     runproof.Step
}

// Result is the judgement of one step.
type Result struct {
	Totals       runproof.Totals // the run's totals including this step
	Status       runproof.StepStatus
	IsInflection bool
	Findings     []runproof.Finding
	// Violation is the stop policy broken by this step, when it is the
	// inflection: of those it broke, the one whose incident is the gravest
	// (FindingRisk), the first in snapshot order of those alike.
	Violation *runproof.Finding
}

// Evaluate judges one step. Running totals include the step itself.
//
//   - A run already stopped: the step is a violation, never an inflection;
//     but one under way at the stop is judged as below, still never the
//     inflection.
//   - A limit whose running total goes strictly over its threshold, a denied
//     step type, or an expression that is true: the policy is exceeded. For a
//     stop policy the step is the violation and the inflection; for a warn
//     policy it is a warning.
//   - A limit whose running total reaches 80 % of its threshold: warning.
//   - An expression that fails on the step (a division by zero, its cost
//     limit): the policy failed, and the step is a warning. A broken rule
//     neither stops agents nor passes silently, and the step is kept.
func (e *Evaluator) Evaluate(in Input) Result {
	res := Result{Totals: in.Before.Add(in.Step), Status: runproof.StepOK}
	wentOn := in.Stopped && !in.UnderWay
	if wentOn {
		res.Status = runproof.StepViolation
		res.Findings = []runproof.Finding{{Outcome: runproof.OutcomeAfterStop}}
	}
	// Judged in e.order, reported in the snapshot's order.
	type hit struct {
		rule            int
		outcome, actual string
		err             error
	}
	var hits []hit
	vars := &activation{in: in, t: res.Totals}
	var spent uint64 // CEL cost of the expressions judged so far
	for _, i := range e.order {
		if outcome, actual, err := e.rules[i].judge(in, res.Totals, vars, &spent); outcome != "" {
			hits = append(hits, hit{i, outcome, actual, err})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int { return a.rule - b.rule })
	for _, h := range hits {
		r, outcome, actual, err := &e.rules[h.rule], h.outcome, h.actual, h.err
		f := finding(r.policy, outcome, actual)
		if err != nil {
			f.Error = err.Error()
		}
		res.Findings = append(res.Findings, f)
		switch {
		case wentOn:
		case outcome == runproof.OutcomeExceeded && r.policy.Action == runproof.ActionStop:
			res.Status = runproof.StepViolation
			if in.Stopped { // under way: the run has its inflection
				break
			}
			res.IsInflection = true
			if res.Violation == nil || graver(f, *res.Violation, res.Totals.CostMicrocents) {
				res.Violation = &f
			}
		case res.Status == runproof.StepOK:
			res.Status = runproof.StepWarning
		}
	}
	return res
}

// graver reports whether the incident stop finding a opens is graver than
// b's, on a run that had cost costMicrocents by then.
func graver(a, b runproof.Finding, costMicrocents int64) bool {
	return slices.Index(riskLevels, FindingRisk(a, costMicrocents)) > slices.Index(riskLevels, FindingRisk(b, costMicrocents))
}

func finding(p runproof.Policy, outcome, actual string) runproof.Finding {
	f := runproof.Finding{
		PolicyID: p.ID, PolicyName: p.Name, PolicyVersion: p.Version,
		Type: p.Type, Action: p.Action, Outcome: outcome,
		Threshold: p.Threshold, Actual: actual,
	}
	switch p.Type {
	case runproof.PolicyStepTypeDenied:
		f.Threshold = strings.Join(p.StepTypes, ",")
	case runproof.PolicyExpression:
		f.Threshold = p.Expression
	}
	return f
}

// judge returns the outcome of one rule ("" when nothing to report) and the
// actual value it compared, as text in the policy's unit; for the outcome
// failed, the error that made the rule fail. spent is the CEL cost of the
// step's expressions judged before, which an expression adds its own to.
func (r *rule) judge(in Input, t runproof.Totals, vars *activation, spent *uint64) (string, string, error) {
	p := r.policy
	switch p.Type {
	case runproof.PolicyStepTypeDenied:
		for _, s := range p.StepTypes {
			if s == in.Step.StepType {
				return runproof.OutcomeExceeded, in.Step.StepType, nil
			}
		}
		return "", "", nil
	case runproof.PolicyExpression:
		if *spent >= MaxStepCost {
			return runproof.OutcomeFailed, "", fmt.Errorf("not judged: the expressions before it on this step took a CEL cost of %d, "+
				"the most all of a step's expressions may take together (%d): make them cheaper", *spent, MaxStepCost)
		}
		hit, cost, err := r.eval(vars)
		*spent += cost
		switch {
		case err != nil:
			return runproof.OutcomeFailed, "", err
		case !hit:
			return "", "", nil
		}
		return runproof.OutcomeExceeded, "true", nil
	}
	v := LimitValue(p.Type, t)
	actual := runproof.FormatFixed(v, Scale(p.Type))
	switch {
	case v > r.threshold:
		return runproof.OutcomeExceeded, actual, nil
	case Approaching(v, r.threshold):
		return runproof.OutcomeApproaching, actual, nil
	}
	return "", "", nil
}

// Approaching reports whether a running total v has reached 80 % of a
// limit's threshold, exactly, in integers.
func Approaching(v, threshold int64) bool { return v*10 >= threshold*8 }

// LimitValue is the running total a limit of type t compares with its
// threshold, in the type's fixed-point unit (see Scale).
func LimitValue(t runproof.PolicyType, tot runproof.Totals) int64 {
	switch t {
	case runproof.PolicyTokenLimit:
		return tot.Tokens()
	case runproof.PolicyCostLimit:
		return tot.CostMicrocents
	case runproof.PolicyStepLimit:
		return tot.Steps
	case runproof.PolicyDurationLimit:
		return tot.DurationMicros
	}
	return 0
}

// eval evaluates an expression on a step, and says at what CEL cost.
func (r *rule) eval(vars *activation) (hit bool, cost uint64, err error) {
	if r.refused != nil {
		return false, 0, fmt.Errorf("the expression is refused: %v", r.refused)
	}
	out, details, err := r.program.Eval(vars)
	if c := details.ActualCost(); c != nil {
		cost = *c
	}
	if err != nil {
		return false, cost, fmt.Errorf("the expression failed: %v", err)
	}
	b, ok := out.Value().(bool)
	return ok && b, cost, nil
}
