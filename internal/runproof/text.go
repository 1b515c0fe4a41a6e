package runproof

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// CheckText returns why s cannot be kept as a one-line text field (a name, a
// type, an id), nil when it can: it must be valid UTF-8 without C0 control
// characters (U+0000 to U+001F). PostgreSQL cannot store U+0000 in text at
// all, and the others have no place in a name. Step content is free JSON and
// needs no such check: its canonical form escapes them.
func CheckText(s string) error {
	return checkText(s, "", "must not hold control characters (U+0000 to U+001F)")
}

// CheckProse is CheckText for free text (a goal, a reason, an expression),
// where tab, line feed and carriage return are allowed.
func CheckProse(s string) error {
	return checkText(s, proseControls, "must not hold control characters (U+0000 to U+001F) other than tab and line breaks")
}

// proseControls are the control characters free text may hold.
const proseControls = "\t\n\r"

// StripText drops what CheckText refuses among the characters of s: its
// control characters, for text from elsewhere (an OTLP attribute) that is
// kept rather than refused.
func StripText(s string) string { return stripControls(s, "") }

// StripProse drops what CheckProse refuses among the characters of s.
func StripProse(s string) string { return stripControls(s, proseControls) }

func stripControls(s, allowed string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && !strings.ContainsRune(allowed, r) {
			return -1
		}
		return r
	}, s)
}

func checkText(s, allowed, message string) error {
	if !utf8.ValidString(s) {
		return errors.New("must be valid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && strings.IndexByte(allowed, c) < 0 {
			return errors.New(message)
		}
	}
	return nil
}
