package pdfr

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/evidence"
)

// or is s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orPending(s string) string { return or(s, "pending") }

// prefixed is s after prefix, or "" when s is.
func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// plural is one when one holds, many otherwise.
func plural(one bool, singular, many string) string {
	if one {
		return singular
	}
	return many
}

// when shows a bundle timestamp (RFC 3339, UTC) exactly, as
// "2026-03-10 14:00:04.200000 UTC"; "" stays "".
func when(ts string) string {
	if ts == "" {
		return ""
	}
	if t, ok := strings.CutSuffix(ts, "Z"); ok {
		return strings.Replace(t, "T", " ", 1) + " UTC"
	}
	return ts
}

// day shows a timestamp as a readable date and time, for the debrief.
func day(ts string) string {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	return t.UTC().Format("2 January 2006, 15:04:05 UTC")
}

// period shows a compliance period.
func period(start, end string) string {
	if start == "" && end == "" {
		return "not set"
	}
	return or(when(start), "open") + " to " + or(when(end), "open")
}

// after says how long after from the timestamp to came, as " (0.2 seconds after
// the violation)"; "" when either is missing. A to stamped before from (an
// agent's clock ahead of runproof's) counts as 0, as in the bundles' texts.
func after(from, to, what string) string {
	a, err1 := time.Parse(time.RFC3339Nano, from)
	b, err2 := time.Parse(time.RFC3339Nano, to)
	if err1 != nil || err2 != nil {
		return ""
	}
	return " (" + evidence.Duration(max(b.Sub(a).Seconds(), 0)) + " after " + what + ")"
}

// afterViolation is after(violation, detection, "the violation"), and says
// why a detection stamped a second or more before the violation counts as
// 0 seconds: the violation's time is the agent's clock, the detection runproof's.
func afterViolation(violation, detection string) string {
	a, err1 := time.Parse(time.RFC3339Nano, violation)
	b, err2 := time.Parse(time.RFC3339Nano, detection)
	if ahead := a.Sub(b).Seconds(); err1 == nil && err2 == nil && ahead >= 1 {
		return " (0 seconds after the violation, whose time is the agent's clock: it runs " + evidence.Duration(ahead) + " ahead of runproof's)"
	}
	return after(violation, detection, "the violation")
}

// num is the shortest decimal that reads back to f.
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// groupDecimal writes a decimal number, as a bundle states a threshold,
// with thousands separators in its whole part: 150,000.5. Anything else
// is written as it is.
func groupDecimal(s string) string {
	sign, unsigned := "", s
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		sign, unsigned = "-", rest
	}
	whole, frac, ok := strings.Cut(unsigned, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || strings.ContainsAny(whole[:min(1, len(whole))], "+-") || strings.Trim(frac, "0123456789") != "" {
		return s
	}
	if ok {
		return sign + evidence.Group(n) + "." + frac
	}
	return sign + evidence.Group(n)
}

// decimal is num with thousands separators in the whole part.
func decimal(f float64) string { return groupDecimal(num(f)) }

// dollars shows cents as dollars, rounded half up to the cent.
func dollars(cents float64) string {
	if cents > 0 && cents < 0.5 { // not "$0.00" for a cost there was
		return "less than $0.01"
	}
	c := int64(math.Round(cents))
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return sign + "$" + evidence.Group(c/100) + "." + strconv.FormatInt(100+c%100, 10)[1:]
}
