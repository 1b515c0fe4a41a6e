package service

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func TestDecodeStepsExactValues(t *testing.T) {
	body := `{"steps":[{"step_index":0,"timestamp":"2026-06-01T10:00:00.1234567+02:00","step_type":"tool:search",
		"input_tokens":12,"output_tokens":30,"cost_cents":0.30000000000000004,"duration_ms":12.3456,"content":{"b":1,"a":"x"}}]}`
	steps, err := DecodeSteps([]byte(body), fuzzNow)
	if err != nil {
		t.Fatal(err)
	}
	s := steps[0]
	if s.CostMicrocents != 300_000 || s.DurationMicros != 12_346 {
		t.Fatalf("cost %d µ¢, duration %d µs", s.CostMicrocents, s.DurationMicros)
	}
	if got := runproof.FormatTime(s.Timestamp); got != "2026-06-01T08:00:00.123456Z" {
		t.Fatalf("timestamp %s", got)
	}
	if string(s.Content) != `{"a":"x","b":1}` || s.ContentDigest != runproof.DigestBytes(s.Content) {
		t.Fatalf("content %s digest %s", s.Content, s.ContentDigest)
	}
	// The hash is a function of the fields: the same step sent with other
	// spacing, member order and number spelling has the same hash.
	again, err := DecodeSteps([]byte(`{"steps":[{"content":{"a":"x","b":1.0},"duration_ms":12.3456,"cost_cents":0.3,
		"output_tokens":30,"input_tokens":12,"step_type":"tool:search","timestamp":"2026-06-01T08:00:00.123456Z","step_index":0}]}`), fuzzNow)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ContentHash != s.ContentHash {
		t.Fatalf("hash changed: %s vs %s", again[0].ContentHash, s.ContentHash)
	}
}

// TestDecodeWholeNumbers: a count or an index may be spelled as JSON
// allows a whole number (1000.0, 1e3, as a float is written), and means the
// same step; a fraction, or a whole past 2^53 written as a float, is
// refused naming the field.
func TestDecodeWholeNumbers(t *testing.T) {
	step := func(index, tokens string) string {
		return `{"steps":[{"step_index":` + index + `,"timestamp":"2026-06-01T10:00:00Z","step_type":"llm","input_tokens":` + tokens + `}]}`
	}
	want, err := DecodeSteps([]byte(step("2", "1000")), fuzzNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, spelling := range [][2]string{{"2.0", "1000.0"}, {"2e0", "1e3"}, {"0.2e1", "1000.000"}} {
		got, err := DecodeSteps([]byte(step(spelling[0], spelling[1])), fuzzNow)
		if err != nil || got[0].Index != 2 || got[0].InputTokens != 1000 || got[0].ContentHash != want[0].ContentHash {
			t.Errorf("%v: %+v, %v", spelling, got, err)
		}
	}
	for _, c := range []struct{ body, field string }{
		{step("2.5", "1"), "steps[0].step_index"},
		{step("2", "1000.5"), "steps[0].input_tokens"},
		{step("2", "9007199254740993.0"), "steps[0].input_tokens"},
		{step("2", "1e400"), "steps[0].input_tokens"},
		{step("2", `"1000"`), "steps[0].input_tokens"},
	} {
		_, err := DecodeSteps([]byte(c.body), fuzzNow)
		var fe *runproof.Error
		if !errors.As(err, &fe) || len(fe.Fields) != 1 || fe.Fields[0].Field != c.field {
			t.Errorf("%s: %v, want a bad %s", c.body, err, c.field)
		}
	}
}

// FuzzDecodeSteps feeds arbitrary bodies to the decoder of untrusted step
// batches. It must never panic; what it accepts must be consistent and
// must decode to the same steps when encoded again.
func FuzzDecodeSteps(f *testing.F) {
	f.Add([]byte(`{"steps":[{"step_index":0,"timestamp":"2026-01-01T00:00:00Z","step_type":"llm","cost_cents":30}]}`))
	f.Add([]byte(`{"steps":[{"step_index":4,"timestamp":"2026-01-01T00:00:00.5Z","step_type":"t","input_tokens":1,"output_tokens":2,"duration_ms":1e3,"content":"hi"},{"step_index":5,"timestamp":"2026-01-01T00:00:01Z","step_type":"t","content":null}]}`))
	f.Add([]byte(`{"steps":[{"step_index":-1}]}`))
	f.Add([]byte(`{"steps":[],"extra":1}`))
	f.Add([]byte("{\"steps\":[{\"step_type\":\"\xff\"}]}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		steps, err := DecodeSteps(body, fuzzNow)
		if err != nil {
			if runproof.ErrorCode(err) == runproof.EINTERNAL {
				t.Fatalf("internal error for user input: %v", err)
			}
			return
		}
		type out struct {
			StepIndex    int64           `json:"step_index"`
			Timestamp    string          `json:"timestamp"`
			StepType     string          `json:"step_type"`
			InputTokens  int64           `json:"input_tokens"`
			OutputTokens int64           `json:"output_tokens"`
			CostCents    json.Number     `json:"cost_cents"`
			DurationMs   json.Number     `json:"duration_ms"`
			Content      json.RawMessage `json:"content,omitempty"`
		}
		var re []out
		for i, s := range steps {
			if i > 0 && s.Index != steps[i-1].Index+1 {
				t.Fatalf("indexes %d, %d accepted", steps[i-1].Index, s.Index)
			}
			if s.Index < 0 || s.InputTokens < 0 || s.OutputTokens < 0 || s.CostMicrocents < 0 || s.DurationMicros < 0 {
				t.Fatalf("negative value accepted: %+v", s)
			}
			if !strings.HasPrefix(s.ContentHash, runproof.DigestPrefix) || s.StepType == "" {
				t.Fatalf("incomplete step: %+v", s)
			}
			re = append(re, out{s.Index, runproof.FormatTime(s.Timestamp), s.StepType, s.InputTokens, s.OutputTokens,
				json.Number(runproof.FormatFixed(s.CostMicrocents, runproof.MicrocentsPerCent)), json.Number(runproof.FormatFixed(s.DurationMicros, runproof.MicrosPerMilli)), json.RawMessage(s.Content)})
		}
		b, err := json.Marshal(map[string]any{"steps": re})
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeSteps(b, fuzzNow)
		if err != nil {
			t.Fatalf("re-encoded steps refused: %v\n%s", err, b)
		}
		for i := range steps {
			if again[i].ContentHash != steps[i].ContentHash {
				t.Fatalf("step %d: hash %s after a round trip, %s before", i, again[i].ContentHash, steps[i].ContentHash)
			}
		}
	})
}

// TestDecodeTypeMessages: a value of the wrong type is named with the type
// it must have.
func TestDecodeTypeMessages(t *testing.T) {
	var v struct {
		Flag  *bool  `json:"flag"`
		Count *int64 `json:"count"`
		Name  string `json:"name"`
	}
	for body, want := range map[string]string{
		`{"flag":"yes"}`: "flag: must be true or false",
		`{"count":"3"}`:  "count: must be a whole number within range",
		`{"name":3}`:     "name: must be a string",
	} {
		if err := DecodeJSON([]byte(body), &v); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

// TestDecodeEveryMember: a body with several members at fault names each,
// in the body's order, with an unknown member among them. (Within one
// member, the steps of a batch say, the first fault is named.)
func TestDecodeEveryMember(t *testing.T) {
	var in RunInput
	err := DecodeJSON([]byte(`{"run_id":5,"agent_id":true,"goal":"ok","zzz":1,"started_at":7}`), &in)
	var got []string
	for _, f := range runproof.ErrorFields(err) {
		got = append(got, f.Field+": "+f.Message)
	}
	want := []string{"run_id: must be a string", "agent_id: must be a string", "zzz: is not a known field", "started_at: must be a string"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// One at fault: named as before, with the decoder's message.
	if err := DecodeJSON([]byte(`{"run_id":"r","agent_id":3}`), &in); err == nil || err.Error() != "agent_id: must be a string" {
		t.Errorf("one member at fault: %v", err)
	}
}

// TestStepOf reads back what StepPath writes, and nothing else.
func TestStepOf(t *testing.T) {
	for _, tt := range []struct {
		path  string
		i     int
		field string
		ok    bool
	}{
		{StepPath(3, "cost_cents"), 3, "cost_cents", true},
		{StepPath(0, ""), 0, "", true},
		{StepPath(12, "content.prompt"), 12, "content.prompt", true},
		{"steps", 0, "", false},
		{"steps[-1].x", 0, "", false},
		{"steps[x].y", 0, "", false},
		{"steps[1]x", 0, "", false},
		{"steps[1].", 0, "", false},
		{"run.steps[1].x", 0, "", false},
	} {
		i, field, ok := StepOf(tt.path)
		if i != tt.i || field != tt.field || ok != tt.ok {
			t.Errorf("StepOf(%q) = %d, %q, %v; want %d, %q, %v", tt.path, i, field, ok, tt.i, tt.field, tt.ok)
		}
	}
}

// TestDecodeStepTypeSpaces: a step type with white space around it is
// refused, naming the field: a policy names step types without it, and
// could never deny "tool:shell ".
func TestDecodeStepTypeSpaces(t *testing.T) {
	for _, typ := range []string{"tool:shell ", " tool:shell", "tool:shell\t"} {
		body := `{"steps":[{"step_index":0,"timestamp":"2026-06-01T10:00:00Z","step_type":"` + strings.ReplaceAll(typ, "\t", `\t`) + `"}]}`
		_, err := DecodeSteps([]byte(body), fuzzNow)
		var fe *runproof.Error
		if !errors.As(err, &fe) || len(fe.Fields) != 1 || fe.Fields[0].Field != "steps[0].step_type" || !strings.Contains(fe.Fields[0].Message, "white space") {
			t.Errorf("%q: %v, want a bad steps[0].step_type", typ, err)
		}
	}
}

// TestDecodeManySteps: a body of more steps than a call holds is refused
// before they are decoded, however small each is.
func TestDecodeManySteps(t *testing.T) {
	for _, n := range []int{MaxStepsPerCall + 1, 1 << 20} {
		body := []byte(`{"steps":[` + strings.Repeat("{},", n-1) + `{}]}`)
		if _, err := DecodeSteps(body, time.Now()); runproof.ErrorCode(err) != runproof.ETOOLARGE || !strings.Contains(err.Error(), "at most 1000 steps") {
			t.Errorf("%d steps: %v, want too large", n, err)
		}
	}
	// Exactly as many as a call holds are decoded, and judged on their own.
	body := []byte(`{"steps":[` + strings.Repeat("{},", MaxStepsPerCall-1) + `{}]}`)
	if _, err := DecodeSteps(body, time.Now()); runproof.ErrorCode(err) == runproof.ETOOLARGE {
		t.Errorf("%d steps: %v", MaxStepsPerCall, err)
	}
}
