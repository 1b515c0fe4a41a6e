package policy

import (
	"errors"
	"slices"
	"strings"

	"github.com/runproof/runproof/internal/runproof"
)

// Scale is the number of fixed-point units in one unit of a limit type's
// threshold: millionths of a cent, microseconds, or 1.
func Scale(t runproof.PolicyType) int64 {
	switch t {
	case runproof.PolicyCostLimit:
		return runproof.MicrocentsPerCent
	case runproof.PolicyDurationLimit:
		return runproof.MicrosPerMilli
	}
	return 1
}

// Normalize checks a policy as submitted and returns it with its threshold
// in canonical form. Expression policies are compiled and type-checked here,
// so a bad expression is refused when the policy is created, not at run time.
func Normalize(p runproof.Policy) (runproof.Policy, error) {
	var errs runproof.Fields

	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" {
		errs.Add("name", "is required")
	} else {
		errs.Text("name", p.Name, runproof.MaxName)
	}
	switch p.Action {
	case runproof.ActionStop, runproof.ActionWarn:
	case "":
		errs.Add("action", `is required: "stop" or "warn"`)
	default:
		errs.Add("action", `must be "stop" or "warn"`)
	}

	// A field of another type of policy is a mistake, not something to drop.
	notFor := func(field string, given bool) {
		if given {
			errs.Add(field, "does not apply to policies of type %s", p.Type)
		}
	}
	switch {
	case p.Type.IsLimit():
		notFor("step_types", len(p.StepTypes) > 0)
		notFor("expression", p.Expression != "")
		if p.Threshold == "" {
			errs.Add("threshold", "is required for a %s policy", p.Type)
			break
		}
		n, err := runproof.ParseAmountExact(p.Threshold, Scale(p.Type))
		if precision := (*runproof.PrecisionError)(nil); errors.As(err, &precision) && Scale(p.Type) == 1 {
			// A count: 3.0 and 1e1 are whole and read; 3.5 is a number
			// with a fraction, said as such.
			err = errors.New("must be a whole number for a " + string(p.Type) + " policy")
		}
		if err != nil {
			errs.Add("threshold", "%s", err)
			break
		}
		if n <= 0 {
			errs.Add("threshold", "must be greater than zero")
			break
		}
		p.Threshold = runproof.FormatFixed(n, Scale(p.Type))
	case p.Type == runproof.PolicyStepTypeDenied:
		notFor("threshold", p.Threshold != "")
		notFor("expression", p.Expression != "")
		switch {
		case len(p.StepTypes) == 0:
			errs.Add("step_types", "must list at least one step type for a step_type_denied policy")
		case len(p.StepTypes) > maxStepTypes:
			errs.Add("step_types", "must list at most %d step types", maxStepTypes)
		}
		for i, s := range p.StepTypes {
			if strings.TrimSpace(s) == "" {
				errs.Add("step_types["+itoa(i)+"]", "must not be empty")
			} else if strings.TrimSpace(s) != s {
				errs.Add("step_types["+itoa(i)+"]", "must not start or end with white space: step types are matched exactly")
			} else if len(s) > runproof.MaxStepTypeLen {
				errs.Add("step_types["+itoa(i)+"]", "must be at most %d bytes, as step types are", runproof.MaxStepTypeLen)
			} else if err := runproof.CheckText(s); err != nil {
				errs.Add("step_types["+itoa(i)+"]", "%s", err)
			}
		}
		p.StepTypes = slices.Clone(p.StepTypes)
		slices.Sort(p.StepTypes)
		p.StepTypes = slices.Compact(p.StepTypes)
	case p.Type == runproof.PolicyExpression:
		notFor("threshold", p.Threshold != "")
		notFor("step_types", len(p.StepTypes) > 0)
		if strings.TrimSpace(p.Expression) == "" {
			errs.Add("expression", "is required for an expression policy")
		} else if err := runproof.CheckProse(p.Expression); err != nil {
			errs.Add("expression", "%s", err)
		} else if _, worst, err := compileExpression(p.Expression); err != nil {
			errs.Add("expression", "%s", err)
		} else if err := checkWorstCost(worst); err != nil {
			errs.Add("expression", "%s", err)
		}
	case p.Type == "":
		errs.Add("type", "is required: one of %s", typeList())
	default:
		errs.Add("type", "must be one of %s", typeList())
	}
	return p, errs.Err()
}

// maxStepTypes bounds the step types a policy lists: every run's snapshot
// holds them.
const maxStepTypes = 100

func typeList() string {
	names := make([]string, len(runproof.PolicyTypes))
	for i, t := range runproof.PolicyTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}
