package verify

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"
)

// The checks below tell whether one JSON token, as read, is already in its
// RFC 8785 form, so that the bytes of a canonical document can be hashed as
// they stream by. Tests check them against the canonicalizer runproof uses
// (runproof.CanonicalJSON).

// canonicalString reports whether a JSON string token (with its quotes,
// valid UTF-8, as a decoder accepts it) is written as RFC 8785 writes
// strings: every character as it is, except '"' and '\\' and the control
// characters, which take their short escape where there is one and
// \u00xx (lowercase hex) otherwise.
func canonicalString(raw []byte) bool {
	s := raw[1 : len(raw)-1]
	for {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return true
		}
		s = s[i+1:]
		switch s[0] {
		case '"', '\\', 'b', 'f', 'n', 'r', 't':
			s = s[1:]
		case 'u':
			if len(s) < 5 || s[1] != '0' || s[2] != '0' || (s[3] != '0' && s[3] != '1') {
				return false
			}
			lo := s[4]
			if !(lo >= '0' && lo <= '9' || lo >= 'a' && lo <= 'f') {
				return false
			}
			if s[3] == '0' && (lo == '8' || lo == '9' || lo == 'a' || lo == 'c' || lo == 'd') {
				return false // \b \t \n \f \r have short forms
			}
			s = s[5:]
		default:
			return false // "\/" is never canonical
		}
	}
}

// canonicalNumber reports whether a JSON number token is written as RFC 8785
// (ECMAScript) writes the IEEE double it denotes. scratch is reused.
func canonicalNumber(raw []byte, scratch *[]byte) bool {
	// Fast path: an integer of at most 15 digits is exact in a double and
	// JSON already forbids leading zeros; only "-0" is not canonical.
	if len(raw) <= 15 && !bytes.ContainsAny(raw, ".eE") {
		return !(len(raw) == 2 && raw[0] == '-' && raw[1] == '0')
	}
	if ok, sure := plainDecimal(raw); sure {
		return ok
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return false // out of the range of a double
	}
	*scratch = appendNumber((*scratch)[:0], f)
	return bytes.Equal(*scratch, raw)
}

// plainDecimal decides, without parsing it, whether a number written as
// digits, a point and digits is canonical; sure is false when it cannot
// tell. A decimal of at most 15 significant digits is the only one of its
// length or shorter that reads back to its double (15 digits always do), so
// it is the shortest form, which ECMAScript writes as it is from 1e-6 on,
// unless its fraction ends with a zero.
func plainDecimal(raw []byte) (ok, sure bool) {
	digits := bytes.TrimPrefix(raw, []byte{'-'})
	whole, frac, dot := bytes.Cut(digits, []byte{'.'})
	if !dot || bytes.ContainsAny(frac, "eE") {
		return false, false
	}
	if frac[len(frac)-1] == '0' {
		return false, true
	}
	significant := len(whole) + len(frac)
	if string(whole) == "0" {
		zeros := len(frac) - len(bytes.TrimLeft(frac, "0"))
		if zeros > 5 { // below 1e-6: exponent notation
			return false, false
		}
		significant = len(frac) - zeros
	}
	return true, significant <= 15
}

// appendNumber writes f as ECMAScript's Number.prototype.toString does,
// which is RFC 8785's form: the shortest digits that read back to f, in
// plain notation from 1e-6 to 1e21 and in exponent notation outside.
func appendNumber(b []byte, f float64) []byte {
	if f == 0 {
		return append(b, '0') // -0 too
	}
	if abs := math.Abs(f); abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// Go writes at least two exponent digits ("1e-07"), ECMAScript the
	// fewest ("1e-7").
	e := start + bytes.IndexByte(b[start:], 'e')
	if b[e+2] == '0' {
		b = append(b[:e+2], b[e+3:]...)
	}
	return b
}

// lessUTF16 reports whether a sorts before b when both are compared as
// sequences of UTF-16 code units, the order of RFC 8785 for member names.
// It differs from the order of UTF-8 bytes only for characters beyond
// U+FFFF, which UTF-16 writes as surrogates below U+E000.
func lessUTF16(a, b []byte) bool {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	switch {
	case i == len(a) || i == len(b):
		return len(a) < len(b)
	case a[i] < utf8.RuneSelf || b[i] < utf8.RuneSelf:
		return a[i] < b[i] // an ASCII character sorts alike in both
	}
	for len(a) > 0 && len(b) > 0 {
		ra, na := utf8.DecodeRune(a)
		rb, nb := utf8.DecodeRune(b)
		if ra != rb {
			return utf16Key(ra) < utf16Key(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) < len(b)
}

// utf16Key orders runes by their first UTF-16 code unit, then by the rune
// (the second unit of two supplementary runes with the same first one
// follows rune order).
func utf16Key(r rune) int64 {
	if r >= 0x10000 {
		return int64(0xD800+((r-0x10000)>>10))<<21 | int64(r)
	}
	return int64(r) << 21
}
