package service

import (
	"encoding/json"
	"testing"
	"time"
)

func BenchmarkDecodeSteps500(b *testing.B) {
	var steps []map[string]any
	start := fuzzNow.Add(-time.Hour)
	for i := range 500 {
		steps = append(steps, map[string]any{"step_index": i, "timestamp": start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
			"step_type": "llm:gpt-4o", "input_tokens": 120 + i%50, "output_tokens": 40, "cost_cents": 0.25, "duration_ms": 812.5,
			"content": map[string]any{"prompt": "Summarise the ticket", "response": "The customer asks for a refund."}})
	}
	body, _ := json.Marshal(map[string]any{"steps": steps})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSteps(body, fuzzNow); err != nil {
			b.Fatal(err)
		}
	}
}
