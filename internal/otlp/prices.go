package otlp

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"strings"
	"sync"

	"github.com/runproof/runproof/internal/runproof"
)

// Price is what one model costs, as integers so that costs sum exactly:
// microcents per 1000 tokens, which is USD per million tokens × 100 000.
type Price struct {
	Input, Output int64
}

// priceScale turns USD per million tokens into microcents per 1000 tokens.
const priceScale = 100_000

// Cost is the cost of a call in microcents, rounded half up; false when it
// is out of range.
func (p Price) Cost(inputTokens, outputTokens int64) (int64, bool) {
	in, ok1 := mul(inputTokens, p.Input)
	out, ok2 := mul(outputTokens, p.Output)
	if !ok1 || !ok2 || in > 1<<62 || out > 1<<62 {
		return 0, false
	}
	n := (in + out + 500) / 1000
	return n, n <= runproof.MaxFixed
}

// mul multiplies two non-negative numbers; false on overflow.
func mul(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	return int64(lo), hi == 0 && lo <= math.MaxInt64
}

// Prices maps lower-case model names to their prices.
type Prices map[string]Price

//go:embed prices.json
var pricesJSON []byte

var defaultPrices = sync.OnceValue(func() Prices {
	p, err := ParsePrices(pricesJSON)
	if err != nil {
		panic("otlp: embedded prices.json: " + err.Error())
	}
	return p
})

// DefaultPrices returns a copy of the price table shipped with runproof
// (prices.json: list prices of common models).
func DefaultPrices() Prices { return maps.Clone(defaultPrices()) }

// ParsePrices reads a price table in the format of prices.json:
//
//	{"unit": "USD per million tokens", "models": {"gpt-4o": {"input": 2.5, "output": 10}}}
func ParsePrices(b []byte) (Prices, error) {
	var doc struct {
		Unit   string              `json:"unit"`
		AsOf   string              `json:"as_of"`
		Models map[string]struct { // checked as numbers below, to name the model at fault
			Input  json.RawMessage `json:"input"`
			Output json.RawMessage `json:"output"`
		} `json:"models"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) { // where, in the file's terms
			line := 1 + bytes.Count(b[:syntax.Offset], []byte("\n"))
			return nil, fmt.Errorf("price table: line %d: %w (is it JSON, as prices.json is?)", line, err)
		}
		return nil, fmt.Errorf("price table: %w", err)
	}
	if doc.Unit != "" && doc.Unit != "USD per million tokens" {
		return nil, fmt.Errorf("price table: unit must be \"USD per million tokens\", not %q", doc.Unit)
	}
	out := make(Prices, len(doc.Models))
	price := func(model, field string, raw json.RawMessage) (int64, error) {
		v := string(bytes.TrimSpace(raw))
		if v == "" || v[0] == '"' || v == "null" || v == "true" || v == "false" || v[0] == '[' || v[0] == '{' {
			return 0, fmt.Errorf("price table: models.%s.%s must be a number (USD per million tokens), not %s", model, field, cmp.Or(v, "missing"))
		}
		n, err := runproof.ParseFixed(v, priceScale)
		if err != nil {
			return 0, fmt.Errorf("price table: models.%s.%s: %w", model, field, err)
		}
		return n, nil
	}
	for name, m := range doc.Models {
		in, err := price(name, "input", m.Input)
		if err != nil {
			return nil, err
		}
		o, err := price(name, "output", m.Output)
		if err != nil {
			return nil, err
		}
		out[strings.ToLower(name)] = Price{Input: in, Output: o}
	}
	return out, nil
}

// With returns p with the entries of over added or replaced.
func (p Prices) With(over Prices) Prices {
	out := maps.Clone(p)
	if out == nil {
		out = Prices{}
	}
	maps.Copy(out, over)
	return out
}

// Lookup finds the price of a model: by its exact name, else by the longest
// name in the table that the model's name starts with, followed by a date
// or version only ("gpt-4o-2024-08-06", "claude-3-5-haiku-latest" and
// "anthropic.claude-3-5-sonnet-20240620-v1:0" are priced as the model
// they name; "o3-pro", "gpt-4.5-preview" and "gpt-4-32k" are other models,
// never priced as "o3" or "gpt-4"). Case and a provider prefix
// ("openai/gpt-4o", Bedrock's "us.anthropic.claude-…") are ignored.
func (p Prices) Lookup(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	model = strings.ToLower(model)
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	for {
		if pr, ok := p.match(model); ok {
			return pr, true
		}
		// Bedrock's region and provider ("us.anthropic."), one at a time:
		// a name of the table may hold one too ("amazon.nova-pro").
		i := strings.IndexByte(model, '.')
		if i <= 0 || strings.IndexFunc(model[:i], func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
			return Price{}, false
		}
		model = model[i+1:]
	}
}

// match finds the price of a lower-case model name: by the name, else by
// the longest name in the table it starts with, followed by a version.
func (p Prices) match(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	best, found := "", false
	for name := range p {
		if len(name) > len(best) && strings.HasPrefix(model, name) && versionOnly(model[len(name):]) {
			best, found = name, true
		}
	}
	return p[best], found
}

// versionOnly reports whether what follows a model's name in a longer name
// only dates or versions it: a separator (-, @, :, _) and then parts
// separated likewise (a dot too) that are each digits, "latest",
// "preview", "exp" or "v" and digits. Digits right after the name are a
// date or a build (three or more, "-0613", "-002", "-20240620"; or a
// month and year, "-08-2024"): one or two alone make another model
// ("claude-opus-4-5" is not "claude-opus-4").
func versionOnly(suffix string) bool {
	if suffix == "" || strings.IndexByte("-@:_", suffix[0]) < 0 {
		return false
	}
	digits := func(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
	parts := strings.FieldsFunc(suffix, func(r rune) bool { return strings.ContainsRune("-@:_.", r) })
	if len(parts) == 0 {
		return false
	}
	monthYear := len(parts) > 1 && len(parts[0]) == 2 && len(parts[1]) == 4 && digits(parts[1])
	if digits(parts[0]) && len(parts[0]) < 3 && !monthYear { // "-5": a minor version, another model
		return false
	}
	for _, part := range parts {
		switch {
		case part == "latest", part == "preview", part == "exp":
		case digits(strings.TrimPrefix(part, "v")):
		default:
			return false
		}
	}
	return true
}
