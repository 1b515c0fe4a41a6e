package evidence

import "testing"

func TestAfterReadsLikeSpeech(t *testing.T) {
	for s, want := range map[float64]string{
		0: "immediately", 0.2: "0.2 seconds after that step", 1: "1 second after that step",
		4.04: "4 seconds after that step", 0.035: "0.035 seconds after that step", 42.6: "43 seconds after that step",
		180: "3 minutes after that step", 90.005: "1 minute 30 seconds after that step", 599.4: "9 minutes 59 seconds after that step",
		599.6: "10 minutes after that step", 59.6: "1 minute after that step", 59.4: "59 seconds after that step", 3600: "1 hour after that step",
		10600.149385: "2 hours 57 minutes after that step",
	} {
		if got := (incidentFacts{}).after(s); got != want {
			t.Errorf("after(%v) = %q, want %q", s, got, want)
		}
	}
	// A step that ran for most of the delay: the delay after its end too.
	for _, tt := range []struct {
		ran, s float64
		want   string
	}{
		{27.975, 28.015, "28 seconds after that step began, 0.04 seconds after it ended"},
		{2, 2, "2 seconds after that step began, as it ended"},
		{0.9, 1.2, "1.2 seconds after that step"}, // a short step: its delay alone
		{3, 10, "10 seconds after that step"},     // most of the delay is runproof's
		{5, 4, "4 seconds after that step"},       // ended after the stop: the agent's clock or figure
		{7200, 7260, "2 hours 1 minute after that step began, 1 minute after it ended"},
	} {
		if got := (incidentFacts{ran: tt.ran}).after(tt.s); got != tt.want {
			t.Errorf("after(%v) of a step of %v s = %q, want %q", tt.s, tt.ran, got, tt.want)
		}
	}
}
