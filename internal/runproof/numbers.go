package runproof

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// ExactNumbers checks that every number of a JSON text keeps its value in
// canonical form. RFC 8785 holds numbers as IEEE 754 doubles, so a number
// too large or too small for one, or with more significant digits than one
// holds, would be stored as another number, and two different texts would
// have one digest. Numbers of at most 15 significant digits without an
// exponent always fit, so texts with nothing else are let through after
// one pass over their bytes.
func ExactNumbers(b []byte) error {
	if !mayBeInexact(b) {
		return nil
	}
	d := jsontext.NewDecoder(bytes.NewReader(b))
	for {
		if d.PeekKind() == '0' {
			v, err := d.ReadValue()
			if err != nil {
				return err
			}
			if stored, ok := exactNumber(string(v)); !ok {
				return fmt.Errorf("the number %s would be stored as %s (numbers are kept as IEEE 754 doubles, RFC 8785): send it as a string",
					abbreviate(string(v)), stored)
			}
			continue
		}
		if _, err := d.ReadToken(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// mayBeInexact reports whether b has an exponent after a digit or more
// than 15 digits in a run of digits and dots, strings included.
func mayBeInexact(b []byte) bool {
	digits := 0
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits++; digits > 15 {
				return true
			}
		case c == '.':
		case (c == 'e' || c == 'E') && digits > 0 && i+1 < len(b):
			return true
		default:
			digits = 0
		}
	}
	return false
}

// exactNumber returns the shortest form of the double nearest a JSON
// number, as RFC 8785 writes it, and whether it has the same value.
func exactNumber(lit string) (string, bool) {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil { // beyond the largest double
		return "infinity", false
	}
	stored := strconv.FormatFloat(f, 'g', -1, 64)
	a, okA := decimalOf(lit)
	b, okB := decimalOf(stored)
	return stored, okA && okB && a == b
}

// decimalOf writes a number's value as sign, significant digits and the
// power of ten before the first of them ("-12.5e1" → "-125e3"), "0" for
// zero whatever its sign.
func decimalOf(lit string) (string, bool) {
	sign := ""
	if rest, ok := strings.CutPrefix(lit, "-"); ok {
		sign, lit = "-", rest
	} else {
		lit = strings.TrimPrefix(lit, "+")
	}
	mant, e, hasExp := strings.Cut(strings.ToLower(lit), "e")
	whole, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimRight(whole+frac, "0")
	lead := len(digits) - len(strings.TrimLeft(digits, "0"))
	digits = digits[lead:]
	if digits == "" {
		return "0", true
	}
	exp := len(whole) - lead
	if hasExp {
		n, err := strconv.Atoi(e)
		if err != nil {
			return "", false
		}
		exp += n
	}
	return sign + digits + "e" + strconv.Itoa(exp), true
}

// abbreviate shortens a long number for an error message.
func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:20] + "…" + s[len(s)-10:]
	}
	return s
}
