package policy

import (
	"errors"
	"fmt"
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
	var errs []runproof.FieldError
	bad := func(field, msg string) { errs = append(errs, runproof.FieldError{Field: field, Message: msg}) }

	p.Name = strings.TrimSpace(p.Name)
	switch {
	case p.Name == "":
		bad("name", "is required")
	case len(p.Name) > 200:
		bad("name", "must be at most 200 bytes")
	case runproof.CheckText(p.Name) != nil:
		bad("name", runproof.CheckText(p.Name).Error())
	}
	switch p.Action {
	case runproof.ActionStop, runproof.ActionWarn:
	case "":
		bad("action", `is required: "stop" or "warn"`)
	default:
		bad("action", `must be "stop" or "warn"`)
	}

	// A field of another type of policy is a mistake, not something to drop.
	notFor := func(field string, given bool) {
		if given {
			bad(field, "does not apply to a "+string(p.Type)+" policy")
		}
	}
	switch {
	case p.Type.IsLimit():
		notFor("step_types", len(p.StepTypes) > 0)
		notFor("expression", p.Expression != "")
		if p.Threshold == "" {
			bad("threshold", "is required for a "+string(p.Type)+" policy")
			break
		}
		n, err := runproof.ParseFixedExact(p.Threshold, Scale(p.Type))
		if err != nil && Scale(p.Type) == 1 {
			// A count: 3.0 and 1e1 are whole and read; 3.5 is a number
			// with a fraction, said as such.
			if _, ferr := runproof.ParseFixedExact(p.Threshold, runproof.MicrocentsPerCent); ferr == nil {
				err = errors.New("must be a whole number for a " + string(p.Type) + " policy")
			}
		}
		if err != nil {
			bad("threshold", err.Error())
			break
		}
		if n <= 0 {
			bad("threshold", "must be greater than zero")
			break
		}
		if err := runproof.CheckAmount(n, Scale(p.Type)); err != nil {
			bad("threshold", err.Error())
			break
		}
		p.Threshold = runproof.FormatFixed(n, Scale(p.Type))
	case p.Type == runproof.PolicyStepTypeDenied:
		notFor("threshold", p.Threshold != "")
		notFor("expression", p.Expression != "")
		switch {
		case len(p.StepTypes) == 0:
			bad("step_types", "must list at least one step type for a step_type_denied policy")
		case len(p.StepTypes) > maxStepTypes:
			bad("step_types", fmt.Sprintf("must list at most %d step types", maxStepTypes))
		}
		for i, s := range p.StepTypes {
			if strings.TrimSpace(s) == "" {
				bad("step_types["+itoa(i)+"]", "must not be empty")
			} else if strings.TrimSpace(s) != s {
				bad("step_types["+itoa(i)+"]", "must not start or end with white space: step types are matched exactly")
			} else if len(s) > runproof.MaxStepTypeLen {
				bad("step_types["+itoa(i)+"]", fmt.Sprintf("must be at most %d bytes, as step types are", runproof.MaxStepTypeLen))
			} else if err := runproof.CheckText(s); err != nil {
				bad("step_types["+itoa(i)+"]", err.Error())
			}
		}
		p.StepTypes = slices.Clone(p.StepTypes)
		slices.Sort(p.StepTypes)
		p.StepTypes = slices.Compact(p.StepTypes)
	case p.Type == runproof.PolicyExpression:
		notFor("threshold", p.Threshold != "")
		notFor("step_types", len(p.StepTypes) > 0)
		if strings.TrimSpace(p.Expression) == "" {
			bad("expression", "is required for an expression policy")
		} else if err := runproof.CheckProse(p.Expression); err != nil {
			bad("expression", err.Error())
		} else if _, err := compileExpression(p.Expression); err != nil {
			bad("expression", err.Error())
		}
	case p.Type == "":
		bad("type", "is required: one of "+typeList())
	default:
		bad("type", "must be one of "+typeList())
	}
	if len(errs) > 0 {
		return p, runproof.Invalid(errs...)
	}
	return p, nil
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
