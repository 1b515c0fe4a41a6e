package policy

import "github.com/runproof/runproof/internal/runproof"

// RiskInput is what an incident's risk level is graded from.
type RiskInput struct {
	Type           runproof.PolicyType
	Threshold      int64 // in the type's unit; 0 when the type has none
	Actual         int64 // in the type's unit
	CostMicrocents int64 // the run's cost up to the stop
}

// Risk grades an incident: Grading's level.
func Risk(in RiskInput) runproof.RiskLevel { return Grading(in).Level }

// A Grade is an incident's risk level and what raised it above the base
// level of what was broken.
type Grade struct {
	Level     runproof.RiskLevel
	Overshoot bool // a limit overshot by half again or more
	Costly    bool // a run that had cost $100 or more by the stop
}

// Grading grades an incident. The base level comes from what was broken;
// it goes up one level when the limit was overshot by half again or more
// (actual ≥ 1.5 × threshold), and one more when the run had cost $100 or
// more by the stop. docs/policies.md has the table.
//
//	base: token_limit, step_limit, duration_limit → low
//	      cost_limit, expression                  → medium
//	      step_type_denied                        → high
func Grading(in RiskInput) Grade {
	level := 0
	switch in.Type {
	case runproof.PolicyCostLimit, runproof.PolicyExpression:
		level = 1
	case runproof.PolicyStepTypeDenied:
		level = 2
	}
	g := Grade{Overshoot: in.Threshold > 0 && in.Actual*2 >= in.Threshold*3,
		Costly: in.CostMicrocents >= 10_000*runproof.MicrocentsPerCent}
	if g.Overshoot {
		level++
	}
	if g.Costly {
		level++
	}
	g.Level = riskLevels[min(level, len(riskLevels)-1)]
	return g
}

// riskLevels are the risk levels, lowest first.
var riskLevels = []runproof.RiskLevel{runproof.RiskLow, runproof.RiskMedium, runproof.RiskHigh, runproof.RiskCritical}

// FindingRisk grades the incident a stop policy's finding opens, on a run
// that had cost costMicrocents by then.
func FindingRisk(f runproof.Finding, costMicrocents int64) runproof.RiskLevel {
	threshold, actual := FixedValues(f)
	return Risk(RiskInput{Type: f.Type, Threshold: threshold, Actual: actual, CostMicrocents: costMicrocents})
}

// FixedValues returns the threshold and actual value of a finding as
// fixed-point integers in the unit of its policy type, for Risk. Types
// without a threshold give zeros.
func FixedValues(f runproof.Finding) (threshold, actual int64) {
	if !f.Type.IsLimit() {
		return 0, 0
	}
	threshold, _ = runproof.ParseFixed(f.Threshold, Scale(f.Type))
	actual, _ = runproof.ParseFixed(f.Actual, Scale(f.Type))
	return threshold, actual
}
