package runproof

import (
	"math/big"
	"testing"
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
	for _, bad := range []string{"-1", "abc", "", "1e400", "NaN"} {
		if _, err := ParseFixed(bad, 1); err == nil {
			t.Errorf("ParseFixed(%q) accepted", bad)
		}
	}
}

// FuzzParseFixed checks the fast path against math/big.
func FuzzParseFixed(f *testing.F) {
	for _, s := range []string{"0", "30", "0.30000000000000004", "12.3456", "0.0000005", "999999999.9999995"} {
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
		want := new(big.Int).Quo(r.Num(), r.Denom()).Int64()
		if fast != want {
			t.Fatalf("%q: fast %d, big %d", s, fast, want)
		}
	})
}
