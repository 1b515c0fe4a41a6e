package runproof

import "testing"

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
