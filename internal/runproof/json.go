package runproof

import "encoding/json"

// The fixed-point fields are kept as integers inside and shown in their
// public units (cents, milliseconds) in JSON.

// MarshalJSON adds tokens, cost_cents and duration_ms.
func (t Totals) MarshalJSON() ([]byte, error) {
	type plain Totals
	return json.Marshal(struct {
		plain
		Tokens     int64   `json:"tokens"`
		CostCents  float64 `json:"cost_cents"`
		DurationMs float64 `json:"duration_ms"`
	}{plain(t), t.Tokens(), Cents(t.CostMicrocents), Millis(t.DurationMicros)})
}

// MarshalJSON adds tokens, cost_cents and duration_ms.
func (s Step) MarshalJSON() ([]byte, error) {
	type plain Step
	return json.Marshal(struct {
		plain
		Tokens     int64   `json:"tokens"`
		CostCents  float64 `json:"cost_cents"`
		DurationMs float64 `json:"duration_ms"`
	}{plain(s), s.InputTokens + s.OutputTokens, Cents(s.CostMicrocents), Millis(s.DurationMicros)})
}
