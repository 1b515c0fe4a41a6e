package runproof

import (
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseFixed(t *testing.T) {
	tests := []struct {
		in    string
		scale int64
		want  int64
	}{
		{"30", MicrocentsPerCent, 30_000_000},
		{"0.30000000000000004", MicrocentsPerCent, 300_000},
		{"0.0000005", MicrocentsPerCent, 1},
		{"0.00000049", MicrocentsPerCent, 0},
		{"12.3456", MicrosPerMilli, 12_346},
		{"1e3", MicrosPerMilli, 1_000_000},
		{"2.5E-1", 1, 0},
		{"100", 1, 100},
	}
	for _, tt := range tests {
		got, err := ParseFixed(tt.in, tt.scale)
		if err != nil || got != tt.want {
			t.Errorf("ParseFixed(%q, %d) = %d, %v; want %d", tt.in, tt.scale, got, err, tt.want)
		}
	}
	for _, bad := range []string{"-1", "abc", "", "1e400", "NaN", "9007199254740993", "1e1000000", "1e-1000000", "1" + strings.Repeat("0", 200)} {
		if _, err := ParseFixed(bad, 1); err == nil {
			t.Errorf("ParseFixed(%q) accepted", bad)
		}
	}
	// Whole parts that overflow int64 once scaled, and one just past
	// MaxExact, are refused rather than wrapped around.
	for _, big := range []string{"10000000000000", "999999999999999", "999999999999999.9", "9007199254.7409925"} {
		if n, err := ParseFixed(big, MicrocentsPerCent); err == nil {
			t.Errorf("ParseFixed(%q, µ¢) = %d, accepted", big, n)
		}
	}
	if n, err := ParseFixed("9007199254.740992", MicrocentsPerCent); err != nil || n != MaxExact {
		t.Errorf("ParseFixed(MaxExact µ¢) = %d, %v", n, err)
	}
}

func TestParseAmountExact(t *testing.T) {
	for in, want := range map[string]int64{"1": 1_000_000, "+1": 1_000_000, "0.000001": 1, "1.5e-3": 1_500, "2.50": 2_500_000, "1e2 ": 100_000_000} {
		if got, err := ParseAmountExact(in, MicrocentsPerCent); err != nil || got != want {
			t.Errorf("ParseAmountExact(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1.0000001", "0.0000001", "1e-7"} {
		if got, err := ParseAmountExact(in, MicrocentsPerCent); err == nil || !strings.Contains(err.Error(), "more decimal places than the 6 kept") {
			t.Errorf("ParseAmountExact(%q) = %d, %v; want refused", in, got, err)
		}
	}
}

// FuzzParseFixed checks the fast path against math/big.
func FuzzParseFixed(f *testing.F) {
	for _, s := range []string{"0", "30", "0.30000000000000004", "12.3456", "0.0000005", "999999999.9999995", "10000000000000", "9007199254.7409925"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parseFixedPlain(s, MicrocentsPerCent)
		if !ok {
			return
		}
		r, valid := new(big.Rat).SetString(s)
		if !valid {
			t.Fatalf("fast path accepted %q", s)
		}
		r.Mul(r, big.NewRat(MicrocentsPerCent, 1)).Add(r, big.NewRat(1, 2))
		want := new(big.Int).Quo(r.Num(), r.Denom())
		if !want.IsInt64() || want.Int64() != fast || fast > MaxExact {
			t.Fatalf("%q: fast %d, big %d", s, fast, want)
		}
	})
}

// TestParseAmount: amounts with decimal places stop at MaxFixed, where
// every one is still exact in a float64; counts at MaxExact.
func TestParseAmount(t *testing.T) {
	for _, c := range []struct {
		s     string
		scale int64
		want  int64
		ok    bool
	}{
		{"999999999.999999", MicrocentsPerCent, 999_999_999_999_999, true},
		{"1000000000", MicrocentsPerCent, MaxFixed, true},
		{"1000000000.000001", MicrocentsPerCent, 0, false},
		{"9000000000.123456", MicrocentsPerCent, 0, false},
		{"1000000000000", MicrosPerMilli, MaxFixed, true},
		{"1000000000000.001", MicrosPerMilli, 0, false},
		{"9007199254740992", 1, MaxExact, true},
		{"9007199254740993", 1, 0, false},
	} {
		n, err := ParseAmount(c.s, c.scale)
		if (err == nil) != c.ok || n != c.want {
			t.Errorf("ParseAmount(%s, %d) = %d, %v", c.s, c.scale, n, err)
		}
		if c.ok && c.scale > 1 {
			if f := strconv.FormatFloat(float64(n)/float64(c.scale), 'f', -1, 64); f != FormatFixed(n, c.scale) {
				t.Errorf("%s is written %s as a float64", FormatFixed(n, c.scale), f)
			}
		}
	}
	// Far past the bound, past MaxExact units even, the bound is named.
	for _, c := range []struct {
		s     string
		scale int64
		want  string
	}{{"5e10", MicrocentsPerCent, "must be at most 1000000000"}, {"20000000000000", MicrosPerMilli, "must be at most 1000000000000"},
		{"1e20", 1, "must be at most 9007199254740992"}} {
		if _, err := ParseAmount(c.s, c.scale); err == nil || err.Error() != c.want {
			t.Errorf("ParseAmount(%s, %d): %v, want %q", c.s, c.scale, err, c.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 12, 7, 0, 0, 3, 500_000_000, time.UTC)
	for _, s := range []string{"2026-12-07T00:00:03.5Z", "2026-12-07t00:00:03.5z", "2026-12-07T01:00:03.5+01:00", "2026-12-07t00:00:03.500000Z",
		"2026-12-07T23:59:03.5+23:59", "2026-12-06T00:01:03.5-23:59"} {
		if got, err := ParseTime(s); err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "2026-12-07", "2026-12-07 00:00:03Z", "2026-12-07T00:00:03", "z", "2026-12-07x00:00:03Z",
		"2026-12-07T00:00:03+24:00", "2026-12-07T00:00:03-24:00", "2026-12-07T00:00:03+05:60",
		"9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+00:01"} { // the years 10000 and -1 in UTC
		if got, err := ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", s, got)
		}
	}
}

// TestCheckReportedTimeYear: the year-2000 floor is the UTC year, whatever
// offset the time was written with.
func TestCheckReportedTimeYear(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for s, ok := range map[string]bool{
		"2000-01-01T00:30:00+01:00": false, // 1999-12-31T23:30Z
		"1999-12-31T23:30:00-01:00": true,  // 2000-01-01T00:30Z
		"2000-01-01T00:00:00Z":      true,
	} {
		at, err := ParseTime(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckReportedTime(at, now); (err == nil) != ok {
			t.Errorf("CheckReportedTime(%s): %v, want accepted %v", s, err, ok)
		}
	}
}
