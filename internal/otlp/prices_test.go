package otlp_test

import (
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/otlp"
)

func TestPriceLookup(t *testing.T) {
	custom, err := otlp.ParsePrices([]byte(`{"unit": "USD per million tokens", "models": {"amazon.nova-pro": {"input": 0.8, "output": 3.2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := otlp.DefaultPrices().With(custom)
	for model, want := range map[string]string{
		"gpt-4o":                     "gpt-4o",
		"gpt-4o-2024-08-06":          "gpt-4o",
		"gpt-4o-mini-2024-07-18":     "gpt-4o-mini",
		"gpt-4-0613":                 "gpt-4",
		"openai/gpt-4.1-mini":        "gpt-4.1-mini",
		"claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
		"claude-3-5-haiku-latest":    "claude-3-5-haiku",
		"gemini-2.5-flash-lite":      "gemini-2.5-flash-lite",
		"models/gemini-1.5-pro-002":  "gemini-1.5-pro",
		"o3-mini":                    "o3-mini",
		"o3x":                        "", // a name, not a version of o3
		"gpt-4oo":                    "",
		"":                           "",
		"o1-preview":                 "o1",
		"o3-pro":                     "", // other models, dearer than the one they start with
		"gpt-5-pro":                  "",
		"gpt-4.5-preview":            "",
		"gpt-4-32k":                  "",
		"gemini-1.5-flash-8b":        "",
		"anthropic.claude-3-5-sonnet-20240620-v1:0":  "claude-3-5-sonnet", // Bedrock
		"us.anthropic.claude-sonnet-4-20250514-v1:0": "claude-sonnet-4",
		"claude-3.5-sonnet":                          "",
		"mistral-large-latest":                       "mistral-large",
		"gpt-4-turbo-2024-04-09":                     "gpt-4-turbo",
		"command-r-plus-08-2024":                     "command-r-plus",
		"models/gemini-2.5-pro-preview-05-06":        "gemini-2.5-pro",
		"gemini-2.0-flash-exp":                       "gemini-2.0-flash",
		"claude-opus-4-5-20251101":                   "", // a minor version is another model
		"claude-opus-4-1-20250805":                   "claude-opus-4-1",
		"claude-3-5-sonnet-2":                        "",
		"gpt-4o-08-2024":                             "gpt-4o", // month and year
		"-":                                          "",
		"gpt-4o-":                                    "",
		"...":                                        "",
		"amazon.nova-pro-v1:0":                       "amazon.nova-pro", // a name of the table with a provider
		"Amazon.Nova-Pro":                            "amazon.nova-pro",
		"us.amazon.nova-pro-v1:0":                    "amazon.nova-pro",
	} {
		got, ok := p.Lookup(model)
		if (want == "") != !ok || ok && got != p[want] {
			t.Errorf("Lookup(%q) = %v, %v; want the price of %q", model, got, ok, want)
		}
	}
}

func TestPriceCost(t *testing.T) {
	gpt4o := otlp.DefaultPrices()["gpt-4o"]
	if gpt4o != (otlp.Price{Input: 250_000, Output: 1_000_000}) {
		t.Fatalf("gpt-4o = %+v", gpt4o)
	}
	for _, c := range []struct {
		in, out, want int64
		ok            bool
	}{
		{1000, 200, 450_000, true}, // $0.0045 = 0.45 cents
		{1, 0, 250, true},
		{0, 0, 0, true},
		{1 << 50, 0, 0, false},
	} {
		if got, ok := gpt4o.Cost(c.in, c.out); got != c.want || ok != c.ok {
			t.Errorf("Cost(%d, %d) = %d, %v; want %d, %v", c.in, c.out, got, ok, c.want, c.ok)
		}
	}
	// Rounding half up at the microcent: 7.5 µ¢ a token (Gemini 1.5 Flash).
	if got, _ := otlp.DefaultPrices()["gemini-1.5-flash"].Cost(1, 0); got != 8 {
		t.Errorf("one token of gemini-1.5-flash = %d µ¢, want 8", got)
	}
}

func TestParsePrices(t *testing.T) {
	p, err := otlp.ParsePrices([]byte(`{"unit":"USD per million tokens","models":{"My-Model":{"input":1,"output":2.5}}}`))
	if err != nil {
		t.Fatal(err)
	}
	all := otlp.DefaultPrices().With(p)
	if all["my-model"] != (otlp.Price{Input: 100_000, Output: 250_000}) || all["gpt-4o"] == (otlp.Price{}) {
		t.Fatalf("prices = %v", all)
	}
	over, _ := otlp.ParsePrices([]byte(`{"models":{"gpt-4o":{"input":0,"output":0}}}`))
	if otlp.DefaultPrices().With(over)["gpt-4o"] != (otlp.Price{}) || otlp.DefaultPrices()["gpt-4o"] == (otlp.Price{}) {
		t.Fatal("an override must replace the default price, and leave the defaults alone")
	}
	for body, want := range map[string]string{
		`{"models":{"m":{"input":-1,"output":1}}}`:          "negative",
		`{"unit":"EUR per token","models":{}}`:              "unit",
		`{"modles":{}}`:                                     "unknown field",
		`{"models":{"m":{"input":"a","output":1}}}`:         `models.m.input must be a number (USD per million tokens), not "a"`,
		`{"models":{"m":{"input":1}}}`:                      "models.m.output must be a number (USD per million tokens), not missing",
		"{\n  \"models\": {\n    \"m\": {input: 1}\n  }\n}": "price table: line 3: invalid character 'i'",
	} {
		if _, err := otlp.ParsePrices([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", body, err, want)
		}
	}
}
