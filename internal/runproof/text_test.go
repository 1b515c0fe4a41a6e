package runproof

import (
	"strings"
	"testing"
)

func TestCheckText(t *testing.T) {
	tests := []struct {
		in          string
		text, prose bool // accepted by CheckText, by CheckProse
	}{
		{"llm:gpt-4o", true, true},
		{"é ✓ 日本", true, true},
		{"", true, true},
		{"a\x00b", false, false},
		{"bell\a", false, false},
		{"\x1f", false, false},
		{"two\nlines", false, true},
		{"tab\there\r\n", false, true},
		{"bad \xff", false, false},
		{"del \x7f", true, true},
	}
	for _, tt := range tests {
		if got := CheckText(tt.in) == nil; got != tt.text {
			t.Errorf("CheckText(%q) accepts: %v, want %v", tt.in, got, tt.text)
		}
		if got := CheckProse(tt.in) == nil; got != tt.prose {
			t.Errorf("CheckProse(%q) accepts: %v, want %v", tt.in, got, tt.prose)
		}
	}
}

// TestStrip: what StripText and StripProse leave, CheckText and CheckProse
// take, and nothing else is dropped.
func TestStrip(t *testing.T) {
	for _, s := range []string{"plain", "a\x1b[31mred\x1b[0m", "line\none\ttab\r\x00", "\x01\x02"} {
		if got := StripText(s); CheckText(got) != nil || strings.ContainsAny(got, "\t\n\r") {
			t.Errorf("StripText(%q) = %q", s, got)
		}
		if got := StripProse(s); CheckProse(got) != nil || strings.Count(got, "\n") != strings.Count(s, "\n") {
			t.Errorf("StripProse(%q) = %q", s, got)
		}
	}
	if got := StripText("a\x1b[31mred"); got != "a[31mred" {
		t.Errorf("StripText dropped %q", got)
	}
}
