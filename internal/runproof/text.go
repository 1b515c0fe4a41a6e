package runproof

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// CheckText returns why s cannot be kept as a one-line text field (a name, a
// type, an id), nil when it can: it must be valid UTF-8 without control
// characters (U+0000 to U+001F, U+007F to U+009F) or bidirectional
// formatting characters (U+202A to U+202E, U+2066 to U+2069). PostgreSQL
// cannot store U+0000 in text at all; the other controls have no place in
// a name; and the bidirectional ones make a name read otherwise than it is
// stored (a reviewer's, say). Step content is free JSON and needs no such
// check: it is kept as the agent sent it, and its canonical form escapes
// controls.
func CheckText(s string) error {
	return checkText(s, "", "must not hold control characters (U+0000 to U+001F, U+007F to U+009F) "+
		"or bidirectional formatting characters (U+202A to U+202E, U+2066 to U+2069)")
}

// CheckProse is CheckText for free text (a goal, a reason, an expression),
// where tab, line feed and carriage return are allowed.
func CheckProse(s string) error {
	return checkText(s, proseControls, "must not hold control characters (U+0000 to U+001F, U+007F to U+009F) "+
		"other than tab and line breaks, or bidirectional formatting characters (U+202A to U+202E, U+2066 to U+2069)")
}

// proseControls are the control characters free text may hold.
const proseControls = "\t\n\r"

// StripText drops what CheckText refuses among the characters of s, for
// text from elsewhere (an OTLP attribute) that is kept rather than refused.
func StripText(s string) string { return stripRefused(s, "") }

// StripProse drops what CheckProse refuses among the characters of s.
func StripProse(s string) string { return stripRefused(s, proseControls) }

func stripRefused(s, allowed string) string {
	return strings.Map(func(r rune) rune {
		if refused(r, allowed) {
			return -1
		}
		return r
	}, s)
}

// refused reports whether r may not be in a text field, but for the
// control characters allowed.
func refused(r rune, allowed string) bool {
	switch {
	case r < 0x20:
		return !strings.ContainsRune(allowed, r)
	case r >= 0x7f && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

func checkText(s, allowed, message string) error {
	if !utf8.ValidString(s) {
		return errors.New("must be valid UTF-8")
	}
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if refused(r, allowed) {
			return errors.New(message)
		}
		i += size
	}
	return nil
}
