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
		{"del \x7f", false, false},
		{"next line \u0085", false, false},
		{"A\u202eB", false, false},
		{"isolate \u2068x\u2069", false, false},
		{"mark \u200f here", true, true}, // a right-to-left mark is kept: right-to-left text needs it
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
	for _, s := range []string{"plain", "a\x1b[31mred\x1b[0m", "line\none\ttab\r\x00", "\x01\x02", "A\u202eB\u0085\x7f"} {
		if got := StripText(s); CheckText(got) != nil || strings.ContainsAny(got, "\t\n\r") {
			t.Errorf("StripText(%q) = %q", s, got)
		}
		if got := StripProse(s); CheckProse(got) != nil || strings.Count(got, "\n") != strings.Count(s, "\n") {
			t.Errorf("StripProse(%q) = %q", s, got)
		}
	}
	for in, want := range map[string]string{"a\x1b[31mred": "a[31mred", "Ada\u202e Lovelace\u2066": "Ada Lovelace", "é\u200f日本": "é\u200f日本"} {
		if got := StripText(in); got != want {
			t.Errorf("StripText(%q) = %q, want %q", in, got, want)
		}
	}
}
