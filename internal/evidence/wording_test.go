package evidence

import (
	"testing"

	"github.com/runproof/runproof/internal/runproof"
)

// TestEveryPolicyTypeIsWorded: a debrief names what was broken and what to
// do about it for every policy type, so that a new type cannot leave a
// leader's page with a blank.
func TestEveryPolicyTypeIsWorded(t *testing.T) {
	for _, pt := range runproof.PolicyTypes {
		if limitWords[pt] == "" || typeAction[pt] == "" {
			t.Errorf("policy type %s: what was broken %q, what to do %q", pt, limitWords[pt], typeAction[pt])
		}
		if pt.IsLimit() != (pt.Unit() != "") {
			t.Errorf("policy type %s: a limit %v, unit %q", pt, pt.IsLimit(), pt.Unit())
		}
	}
}
