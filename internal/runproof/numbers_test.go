package runproof

import (
	"strings"
	"testing"
)

func TestExactNumbers(t *testing.T) {
	for _, c := range []struct {
		text string
		ok   bool
	}{
		{`{"a":1,"b":-2.5,"c":[0.1,1e2,1E-2,100e-2]}`, true},
		{`{"x":1.0,"y":-0,"z":0e99999999999999999999}`, true},
		{`{"big":9007199254740992,"max":1.7976931348623157e308,"tiny":5e-324}`, true},
		{`{"digits":123456789012345}`, true},
		{`{"s":"1e400 and 12345678901234567890 inside a string"}`, true},
		{`{"x":1e400}`, false},
		{`{"x":-1e400}`, false},
		{`{"x":1e-400}`, false},
		{`{"x":2e-324}`, false},
		{`{"x":9007199254740993}`, false},
		{`[0.12345678901234567890]`, false},
		{`{"deep":[[{"x":12345678901234567890}]]}`, false},
		{`{"x":1234567890.1234567890}`, false},
		{`{"x":0.1234567890123456}`, true},
	} {
		err := ExactNumbers([]byte(c.text))
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.text, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "send it as a string") {
			t.Errorf("%s: %v", c.text, err)
		}
	}
	if err := ExactNumbers([]byte(`{"x":1e5,`)); err == nil { // the canonicalizer reports other faults
		t.Error("a cut text passed")
	}
}

func TestDecimalOf(t *testing.T) {
	for lit, want := range map[string]string{
		"0": "0", "-0": "0", "0.000": "0", "1": "1e1", "10": "1e2", "0.01": "1e-1", "-12.5e1": "-125e3",
		"1.7976931348623157e+308": "17976931348623157e309", "100e-2": "1e1",
	} {
		if got, ok := decimalOf(lit); !ok || got != want {
			t.Errorf("decimalOf(%s) = %s, %v; want %s", lit, got, ok, want)
		}
	}
}
