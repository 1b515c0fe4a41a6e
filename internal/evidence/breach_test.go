package evidence

import (
	"testing"

	"github.com/runproof/runproof/internal/runproof"
)

// TestBreachTextAsStored: names and rules appear in a breach's statement as
// they are stored, right-to-left marks and quotes included, not escaped.
func TestBreachTextAsStored(t *testing.T) {
	for _, c := range []struct {
		inc  runproof.Incident
		want string
	}{
		{runproof.Incident{PolicyName: "מגבלת עלות\u200f לריצה", ViolationType: runproof.PolicyStepLimit, ThresholdValue: "1", ActualValue: "2", InflectionStepIndex: 1},
			"Policy \"מגבלת עלות\u200f לריצה\": step limit of 1 step exceeded at step 1 (2 steps)"}, // 1 step, 2 steps
		{runproof.Incident{PolicyName: "no shell", ViolationType: runproof.PolicyExpression, ThresholdValue: `step.step_type == "shell"`},
			`Policy "no shell": rule "step.step_type == "shell"" matched at step 0`},
	} {
		if got := breachText(&c.inc); got != c.want {
			t.Errorf("breachText = %q, want %q", got, c.want)
		}
	}
}
