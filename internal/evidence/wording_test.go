package evidence

import (
	"strconv"
	"strings"
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

// TestEveryLimitIsWrittenInItsUnit: the SOC 2 evidence and the debrief
// write a limit in words and in its unit, for every limit type, rather
// than as its identifier or a bare number.
func TestEveryLimitIsWrittenInItsUnit(t *testing.T) {
	for _, pt := range runproof.PolicyTypes {
		if !pt.IsLimit() {
			continue
		}
		inc := &runproof.Incident{PolicyName: "cap", ViolationType: pt, ThresholdValue: "1", ActualValue: "2"}
		if text := breachText(inc); strings.Contains(text, "_") {
			t.Errorf("policy type %s: the SOC 2 evidence says %q", pt, text)
		}
		if a := amount(pt, 2*unitScale(pt)); a == strconv.FormatInt(2*unitScale(pt), 10) {
			t.Errorf("policy type %s: the debrief writes a limit as the bare number %q", pt, a)
		}
	}
}
