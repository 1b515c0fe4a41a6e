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
		if got := after(s); got != want {
			t.Errorf("after(%v) = %q, want %q", s, got, want)
		}
	}
}
