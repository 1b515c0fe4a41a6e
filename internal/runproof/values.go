package runproof

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Timestamp is how runproof keeps every time: UTC, truncated to microseconds,
// so that SQLite and PostgreSQL give the same bytes.
func Timestamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// TimeFormat is RFC 3339 with exactly six fractional digits.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// FormatTime renders a timestamp the one way runproof writes times.
func FormatTime(t time.Time) string { return Timestamp(t).Format(TimeFormat) }

// ParseTime reads an RFC 3339 timestamp, fractional seconds optional. RFC
// 3339 lets "T" and "Z" be written in lower case, which Go's parser does
// not take, and bounds an offset's hours by 23 and its minutes by 59,
// which Go's parser does not check (it reads "+24:00" as a day). The time
// must fall in the years 0000–9999 in UTC as well as where it was written,
// as runproof writes every time in UTC (9999-12-31T23:00:00-01:00 is the
// year 10000).
func ParseTime(s string) (time.Time, error) {
	if len(s) > 10 && s[10] == 't' {
		s = s[:10] + "T" + s[11:]
	}
	if strings.HasSuffix(s, "z") {
		s = s[:len(s)-1] + "Z"
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, err
	}
	if off := s[len(s)-6:]; off[0] == '+' || off[0] == '-' {
		if off[1:3] > "23" || off[4:6] > "59" {
			return time.Time{}, fmt.Errorf("parsing time %q: time zone offset %s out of range", s, off)
		}
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("parsing time %q: it is the year %d in UTC, out of range", s, y)
	}
	return t, nil
}

// MaxClockSkew is how far in the future a time an agent reports may lie:
// its clock may run ahead of the server's.
const MaxClockSkew = 5 * time.Minute

// CheckReportedTime refuses a time an agent reports (a step's or a run's,
// a span's) that lies more than MaxClockSkew after now, or before the
// year 2000. The error reads after the time or the field named.
func CheckReportedTime(t, now time.Time) error {
	if t.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("is in the future (the server's time is %s)", now.UTC().Format(time.RFC3339))
	}
	return CheckYear(t)
}

// CheckYear refuses a time before the year 2000, which runproof holds
// nothing of: a mistyped year. The error reads after the time or the
// field named.
func CheckYear(t time.Time) error {
	if t.UTC().Year() < 2000 {
		return errors.New("is before the year 2000")
	}
	return nil
}

// Scales of the fixed-point integers that keep money and durations exact.
const (
	MicrocentsPerCent = 1_000_000 // cost: millionths of a cent
	MicrosPerMilli    = 1_000     // duration: microseconds
)

// MaxExact bounds every count runproof keeps (a step's tokens, a run's
// totals of them, a token or step threshold): 2^53, up to which every
// integer is exact in a float64, as most JSON readers take numbers. Sums of
// two such values cannot overflow an int64. (Amounts with decimal places
// are bounded by MaxFixed.)
const MaxExact = 1 << 53

// MaxFixed bounds every amount runproof keeps with decimal places (a
// step's cost and duration, a run's totals of them, a limit's threshold):
// 10^15 units: 1000000000 cents, or 31 years in milliseconds. Such an
// amount has at most 15 significant digits, which a float64 keeps: it is
// written exactly in JSON, as RFC 8785 writes numbers too. (At 16, a cost
// of 9000000000.123456 cents came out as 9000000000.123455.)
const MaxFixed = 1_000_000_000_000_000

// ParseAmount is ParseFixed for an amount that comes in (a step's cost or
// duration, a threshold): with decimal places (scale above 1), it is
// refused above MaxFixed.
func ParseAmount(s string, scale int64) (int64, error) {
	return parseFixed(s, scale, amountBound(scale))
}

// amountBound is the largest amount of 1/scale units that may come in.
func amountBound(scale int64) int64 {
	if scale > 1 {
		return MaxFixed
	}
	return MaxExact
}

// ParseFixed parses a decimal number (as JSON writes it) into an integer
// count of 1/scale units, rounding half away from zero beyond that precision.
// It refuses negative and non-finite values, and values above MaxExact units.
func ParseFixed(s string, scale int64) (int64, error) {
	return parseFixed(s, scale, MaxExact)
}

// parseFixed is ParseFixed refusing values above max units.
func parseFixed(s string, scale, max int64) (int64, error) {
	tooLarge := func() (int64, error) { return 0, fmt.Errorf("must be at most %s", FormatFixed(max, scale)) }
	if n, ok := parseFixedPlain(s, scale); ok {
		if n > max {
			return tooLarge()
		}
		return n, nil
	}
	// math/big takes time and memory with the exponent: "1e1000000" is
	// a thousand times "1e1000". No amount runproof keeps needs either.
	s = strings.TrimSpace(s)
	if len(s) > maxNumberLen {
		return 0, fmt.Errorf("is a number of more than %d characters", maxNumberLen)
	}
	if _, e, ok := strings.Cut(strings.ToLower(s), "e"); ok {
		if n, err := strconv.Atoi(e); err != nil || n > maxExponent || n < -maxExponent {
			return 0, fmt.Errorf("%q is out of range", s)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if r.Sign() < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	r.Mul(r, new(big.Rat).SetInt64(scale))
	// round half away from zero: floor(r + 1/2) for r >= 0
	r.Add(r, big.NewRat(1, 2))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsInt64() || q.Int64() > max {
		return tooLarge()
	}
	return q.Int64(), nil
}

// Bounds of the numbers ParseFixed reads beyond its fast path.
const (
	maxNumberLen = 100
	maxExponent  = 100
)

// ParseAmountExact is ParseAmount refusing a value that has more decimal
// places than scale keeps, instead of rounding it (a *PrecisionError).
func ParseAmountExact(s string, scale int64) (int64, error) {
	n, err := ParseAmount(s, scale)
	if err != nil {
		return 0, err
	}
	given, ok := decimalOf(strings.TrimSpace(s))
	if kept, _ := decimalOf(FormatFixed(n, scale)); !ok || given != kept {
		return 0, &PrecisionError{Kept: indexAfterScale(scale)}
	}
	return n, nil
}

// A PrecisionError is a number with more decimal places than are kept.
type PrecisionError struct{ Kept int }

func (e *PrecisionError) Error() string {
	return fmt.Sprintf("has more decimal places than the %d kept", e.Kept)
}

// FormatFixed renders n/scale as the shortest exact decimal ("120", "0.5").
func FormatFixed(n, scale int64) string {
	whole, frac := n/scale, n%scale
	if frac == 0 {
		return strconv.FormatInt(whole, 10)
	}
	digits := len(strconv.FormatInt(scale, 10)) - 1
	f := fmt.Sprintf("%0*d", digits, frac)
	return strconv.FormatInt(whole, 10) + "." + strings.TrimRight(f, "0")
}

// Cents renders microcents as a float of cents, for JSON output.
func Cents(microcents int64) float64 {
	return float64(microcents) / MicrocentsPerCent
}

// Millis renders microseconds as a float of milliseconds, for JSON output.
func Millis(micros int64) float64 { return float64(micros) / MicrosPerMilli }

// parseFixedPlain is ParseFixed's fast path for the common spelling of a
// number, digits with an optional fraction and no exponent; anything else
// (or any doubt) is left to math/big.
func parseFixedPlain(s string, scale int64) (int64, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(whole) > 15 || len(frac) > 30 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(whole) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > MaxExact/scale {
		return 0, false // too large, or close: math/big decides
	}
	n *= scale
	digits := int64(1)
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if digits < scale {
			digits *= 10
			n += int64(c-'0') * (scale / digits)
		} else if c >= '5' && i == indexAfterScale(scale) {
			n++ // half away from zero: only the first dropped digit decides
		}
	}
	if n > MaxExact {
		return 0, false
	}
	return n, true
}

// indexAfterScale is the position of the first fractional digit beyond the
// precision of scale (a power of ten).
func indexAfterScale(scale int64) int {
	return len(strconv.FormatInt(scale, 10)) - 1
}
