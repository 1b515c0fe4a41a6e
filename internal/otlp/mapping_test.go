package otlp_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
)

var (
	now  = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	base = now.Add(-time.Hour)
)

const (
	traceA = "0af7651916cd43dd8448eb211c80319c"
	traceB = "1bf7651916cd43dd8448eb211c80319d"
)

func kv(k string, v any) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: anyValue(v)}
}

func anyValue(v any) *commonpb.AnyValue {
	switch v := v.(type) {
	case string:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
	case int:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(v)}}
	case int64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}
	case float64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}
	case bool:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}
	case []byte:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v}}
	case []any:
		arr := &commonpb.ArrayValue{}
		for _, e := range v {
			arr.Values = append(arr.Values, anyValue(e))
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: arr}}
	case []*commonpb.KeyValue:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: v}}}
	}
	return &commonpb.AnyValue{}
}

func unhex(s string) []byte { b, _ := hex.DecodeString(s); return b }

// span is a span of trace tid that starts from ms after base and lasts ms.
func span(tid, sid, parent string, from, ms int, attrs ...*commonpb.KeyValue) *tracepb.Span {
	start := base.Add(time.Duration(from) * time.Millisecond)
	return &tracepb.Span{TraceId: unhex(tid), SpanId: unhex(sid), ParentSpanId: unhex(parent), Name: "step",
		StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(start.Add(time.Duration(ms) * time.Millisecond).UnixNano()),
		Attributes: attrs}
}

func request(resource []*commonpb.KeyValue, spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: resource}, ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}}}
}

func mapOne(t *testing.T, sp *tracepb.Span) otlp.Span {
	t.Helper()
	res := otlp.Map(request(nil, sp), otlp.Options{Now: now})
	if len(res.Rejected) > 0 || len(res.Runs) != 1 {
		t.Fatalf("result = %+v", res)
	}
	return res.Runs[0].Spans[0]
}

func TestStepType(t *testing.T) {
	for _, c := range []struct {
		attrs []*commonpb.KeyValue
		want  string
	}{
		{nil, "step"}, // the span name, without an operation
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "chat")}, "chat"},
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.response.model", "gpt-4o-2024-08-06")}, "chat:gpt-4o"},
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "chat"), kv("gen_ai.response.model", "gpt-4o-2024-08-06")}, "chat:gpt-4o-2024-08-06"},
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", "web_search"), kv("gen_ai.request.model", "x")}, "execute_tool:web_search"},
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", "support-bot")}, "invoke_agent:support-bot"},
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", 3)}, "step"}, // not a string: no operation
		// tool calls that do not say so: the Vercel AI SDK's, OpenInference's
		{[]*commonpb.KeyValue{kv("ai.toolCall.name", "shell")}, "execute_tool:shell"},
		{[]*commonpb.KeyValue{kv("tool.name", "shell"), kv("ai.toolCall.name", "other")}, "execute_tool:shell"},
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "chat"), kv("llm.model_name", "gpt-4o")}, "chat:gpt-4o"},
		// model calls that do not say so: OpenInference's LLM spans, the Vercel AI SDK's doGenerate
		{[]*commonpb.KeyValue{kv("openinference.span.kind", "LLM"), kv("llm.model_name", "gpt-4o")}, "chat:gpt-4o"},
		{[]*commonpb.KeyValue{kv("openinference.span.kind", "CHAIN")}, "step"},
		{[]*commonpb.KeyValue{kv("ai.operationId", "ai.generateText.doGenerate"), kv("gen_ai.request.model", "gpt-4o")}, "chat:gpt-4o"},
		{[]*commonpb.KeyValue{kv("ai.operationId", "ai.generateText"), kv("gen_ai.request.model", "gpt-4o")}, "step"},
		// white space around a name is none of it: a policy names step types without it
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "execute_tool "), kv("gen_ai.tool.name", " shell ")}, "execute_tool:shell"},
		{[]*commonpb.KeyValue{kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", " "), kv("gen_ai.response.model", "gpt-4o")}, "chat:gpt-4o"}, // a blank one is none
	} {
		if got := mapOne(t, span(traceA, "00000000000000a1", "", 0, 5, c.attrs...)).StepType; got != c.want {
			t.Errorf("step type %q, want %q", got, c.want)
		}
	}
}

func TestTokensCostDuration(t *testing.T) {
	gpt := []*commonpb.KeyValue{kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.input_tokens", 1000), kv("gen_ai.usage.output_tokens", 200)}
	for _, c := range []struct {
		name  string
		attrs []*commonpb.KeyValue
		cost  int64 // microcents
	}{
		{"list price of the request model", gpt, 450_000},
		{"the response model goes first", append(gpt, kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18")), 27_000},
		{"a provider prefix is ignored", []*commonpb.KeyValue{kv("gen_ai.request.model", "openai/GPT-4o"), kv("gen_ai.usage.input_tokens", 1_000_000)}, 250_000_000},
		{"unknown model", []*commonpb.KeyValue{kv("gen_ai.request.model", "my-own-model"), kv("gen_ai.usage.input_tokens", 1000)}, 0},
		{"runproof.cost_cents first", append(gpt, kv("runproof.cost_cents", 0.3), kv("gen_ai.usage.cost", 1.0)), 300_000},
		{"runproof.cost_cents as an integer", []*commonpb.KeyValue{kv("runproof.cost_cents", 2)}, 2_000_000},
		{"gen_ai.usage.cost in USD", append(gpt, kv("gen_ai.usage.cost", 0.0123)), 1_230_000},
		{"whole doubles are token counts", []*commonpb.KeyValue{kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.input_tokens", 4000.0)}, 1_000_000},
		// older conventions and OpenInference, when the current names are absent
		{"prompt and completion tokens", []*commonpb.KeyValue{kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.prompt_tokens", 1000), kv("gen_ai.usage.completion_tokens", 200)}, 450_000},
		{"OpenInference", []*commonpb.KeyValue{kv("llm.model_name", "gpt-4o"), kv("llm.token_count.prompt", 1000), kv("llm.token_count.completion", 200)}, 450_000},
		{"current names first", append(gpt, kv("gen_ai.usage.prompt_tokens", 5000)), 450_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := mapOne(t, span(traceA, "00000000000000a1", "", 0, 1500, c.attrs...)); got.CostMicrocents != c.cost || got.DurationMicros != 1_500_000 {
				t.Fatalf("cost %d µ¢, duration %d µs; want %d µ¢", got.CostMicrocents, got.DurationMicros, c.cost)
			}
		})
	}
	s := mapOne(t, span(traceA, "00000000000000a1", "", 0, 5, gpt...))
	if s.InputTokens != 1000 || s.OutputTokens != 200 || !s.Timestamp.Equal(base) {
		t.Fatalf("span = %+v", s)
	}
	old := []*commonpb.KeyValue{kv("gen_ai.usage.prompt_tokens", 7), kv("llm.token_count.completion", 3)}
	if s := mapOne(t, span(traceA, "00000000000000a1", "", 0, 5, old...)); s.InputTokens != 7 || s.OutputTokens != 3 {
		t.Fatalf("tokens of other names: %+v", s)
	}
}

// TestIgnoredAttributes: a number that cannot be read counts as absent, and
// says so, but the span is a step all the same: its tool call is seen.
func TestIgnoredAttributes(t *testing.T) {
	tool := []*commonpb.KeyValue{kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", "shell")}
	for _, c := range []struct {
		attrs         []*commonpb.KeyValue
		reason        string
		in, out, cost int64 // cost in microcents
	}{
		{[]*commonpb.KeyValue{kv("gen_ai.usage.input_tokens", -1), kv("gen_ai.usage.output_tokens", 3)}, "gen_ai.usage.input_tokens must be a whole number", 0, 3, 0},
		{[]*commonpb.KeyValue{kv("gen_ai.usage.output_tokens", 1.5)}, "gen_ai.usage.output_tokens must be a whole number", 0, 0, 0},
		{[]*commonpb.KeyValue{kv("gen_ai.usage.input_tokens", "12")}, "gen_ai.usage.input_tokens must be a whole number", 0, 0, 0},
		{[]*commonpb.KeyValue{kv("gen_ai.usage.prompt_tokens", -1)}, "gen_ai.usage.prompt_tokens must be a whole number", 0, 0, 0},
		{[]*commonpb.KeyValue{kv("gen_ai.usage.input_tokens", int64(1)<<53+1)}, "gen_ai.usage.input_tokens must be a whole number", 0, 0, 0},
		{[]*commonpb.KeyValue{kv("runproof.cost_cents", -0.5)}, "runproof.cost_cents must not be negative: counted as absent", 0, 0, 0},
		{[]*commonpb.KeyValue{kv("runproof.cost_cents", -0.5), kv("gen_ai.usage.cost", 0.02)}, "runproof.cost_cents must not be negative", 0, 0, 2_000_000},
		{[]*commonpb.KeyValue{kv("gen_ai.usage.cost", "cheap")}, "gen_ai.usage.cost must be a number", 0, 0, 0},
	} {
		res := otlp.Map(request(nil, span(traceA, "00000000000000a1", "", 0, 5, append(c.attrs, tool...)...)), otlp.Options{Now: now})
		if len(res.Rejected) != 0 || len(res.Runs) != 1 || len(res.Ignored) != 1 || !strings.Contains(res.Ignored[0].Reason, c.reason) {
			t.Errorf("want the span, with %q ignored: got %+v", c.reason, res)
			continue
		}
		if s := res.Runs[0].Spans[0]; s.StepType != "execute_tool:shell" || s.InputTokens != c.in || s.OutputTokens != c.out || s.CostMicrocents != c.cost {
			t.Errorf("%s: span %s, %d and %d tokens, %d µ¢; want execute_tool:shell, %d, %d, %d µ¢",
				c.reason, s.StepType, s.InputTokens, s.OutputTokens, s.CostMicrocents, c.in, c.out, c.cost)
		}
	}
}

func TestRejectedSpans(t *testing.T) {
	ok := func() *tracepb.Span { return span(traceA, "00000000000000a1", "", 0, 5) }
	with := func(f func(*tracepb.Span)) *tracepb.Span { s := ok(); f(s); return s }
	for _, c := range []struct {
		span   *tracepb.Span
		reason string
	}{
		{with(func(s *tracepb.Span) { s.TraceId = nil }), "trace_id is required"},
		{with(func(s *tracepb.Span) { s.TraceId = make([]byte, 16) }), "trace_id is required"},
		{with(func(s *tracepb.Span) { s.SpanId = []byte{1} }), "span_id is required"},
		{with(func(s *tracepb.Span) { s.ParentSpanId = []byte{1} }), "parent_span_id must be empty or 8 bytes"},
		{with(func(s *tracepb.Span) { s.StartTimeUnixNano = 0 }), "start_time_unix_nano is required"},
		{with(func(s *tracepb.Span) { s.EndTimeUnixNano = 0 }), "end_time_unix_nano is required"},
		{with(func(s *tracepb.Span) { s.EndTimeUnixNano = s.StartTimeUnixNano - 1 }), "before start_time_unix_nano"},
		{with(func(s *tracepb.Span) { s.StartTimeUnixNano, s.EndTimeUnixNano = 1, 2 }), "before the year 2000"},
		{with(func(s *tracepb.Span) { s.EndTimeUnixNano = uint64(now.Add(time.Hour).UnixNano()) }), "in the future"},
		{with(func(s *tracepb.Span) { s.Name = " " }), "no name and no gen_ai.operation.name"},
		{with(func(s *tracepb.Span) { s.Name = strings.Repeat("x", 201) }), "over 200 bytes"},
		{span(traceA, "00000000000000a1", "", 0, 5, kv("runproof.run_id", "no spaces allowed")), "is not a valid run id"},
		{span(traceA, "00000000000000a1", "", 0, 5, kv("runproof.run_id", "..")), "is not a valid run id"},
		{span(traceA, "00000000000000a1", "", 0, 5, kv("gen_ai.request.model", "gpt-4"), kv("gen_ai.usage.input_tokens", int64(1)<<53)), "out of range"},
	} {
		res := otlp.Map(request(nil, c.span), otlp.Options{Now: now})
		if len(res.Runs) != 0 || len(res.Rejected) != 1 || !strings.Contains(res.Rejected[0].Reason, c.reason) {
			t.Errorf("want %q, got %+v", c.reason, res)
		}
	}
}

func TestRunsOfARequest(t *testing.T) {
	agent := []*commonpb.KeyValue{kv("service.name", "svc")}
	res := otlp.Map(request(agent,
		// trace A: its root names the agent and ends the run; spans in start
		// order, ties as the request gives them, whatever their ends
		span(traceA, "00000000000000a3", "00000000000000a0", 20, 6),
		span(traceA, "00000000000000a2", "00000000000000a0", 20, 5),
		span(traceA, "00000000000000a5", "00000000000000a0", 30, 5),
		span(traceA, "00000000000000a4", "00000000000000a0", 30, 5),
		span(traceA, "00000000000000a1", "00000000000000a0", 10, 5),
		with(span(traceA, "00000000000000a0", "", 0, 50, kv("gen_ai.agent.name", "planner"), kv("gen_ai.agent.description", "plan a trip")),
			tracepb.Status_STATUS_CODE_ERROR),
		// traces B and C are one conversation; a span that does not say so joins it through its trace
		span(traceB, "00000000000000b1", "", 100, 5, kv("gen_ai.conversation.id", "conv-1")),
		span(traceB, "00000000000000b2", "00000000000000b1", 101, 5),
		span("2cf7651916cd43dd8448eb211c80319e", "00000000000000c1", "", 200, 5, kv("gen_ai.conversation.id", "conv-1"), kv("gen_ai.agent.id", "agent-7")),
		// runproof.run_id wins over the conversation
		span("3df7651916cd43dd8448eb211c80319f", "00000000000000d1", "", 300, 5, kv("gen_ai.conversation.id", "conv-1")),
		span("3df7651916cd43dd8448eb211c80319f", "00000000000000d2", "", 301, 5, kv("runproof.run_id", "run-9")),
	), otlp.Options{Now: now})
	if len(res.Rejected) != 0 || len(res.Runs) != 3 {
		t.Fatalf("result = %+v", res)
	}
	a, conv, named := res.Runs[0], res.Runs[1], res.Runs[2]
	var ids []string
	for _, s := range a.Spans {
		ids = append(ids, s.SpanID[14:])
	}
	if a.ID != traceA || a.Source != otlp.FromTrace || a.TraceID != traceA || a.AgentID != "planner" || a.Goal != "plan a trip" ||
		!a.StartedAt.Equal(base) || strings.Join(ids, " ") != "a0 a1 a3 a2 a5 a4" ||
		a.End == nil || !a.End.Failed || a.End.SpanID != "00000000000000a0" || !a.End.At.Equal(base.Add(50*time.Millisecond)) {
		t.Errorf("run A = %+v (spans %v)", a, ids)
	}
	if conv.ID != "conv-1" || conv.Source != otlp.FromConversation || conv.TraceID != traceB || len(conv.Spans) != 3 ||
		conv.AgentID != "agent-7" || conv.End != nil {
		t.Errorf("conversation run = %+v", conv)
	}
	if named.ID != "run-9" || named.Source != otlp.FromRunID || len(named.Spans) != 2 || named.AgentID != "svc" || named.End != nil {
		t.Errorf("named run = %+v", named)
	}
	if res := otlp.Map(request(nil, span(traceA, "00000000000000a1", "", 0, 5)), otlp.Options{Now: now}); res.Runs[0].AgentID != otlp.UnknownAgent {
		t.Errorf("agent of a nameless service = %q", res.Runs[0].AgentID)
	}
	// A sub-agent's span, first in start order, does not name the run: the
	// resource's agent does.
	sub := request([]*commonpb.KeyValue{kv("gen_ai.agent.name", "support-bot")},
		span(traceA, "00000000000000a1", "00000000000000a0", 0, 5, kv("gen_ai.agent.name", "researcher")),
		span(traceA, "00000000000000a2", "00000000000000a0", 1, 5))
	if r := otlp.Map(sub, otlp.Options{Now: now}).Runs[0]; r.AgentID != "support-bot" || r.ResourceAgent != "support-bot" {
		t.Errorf("run of a sub-agent's span: agent %q, resource's %q; want support-bot for both", r.AgentID, r.ResourceAgent)
	}
}

// A control character in an agent's name or description (an ANSI-coloured
// description, say) is left out, not a reason to refuse the run.
func TestControlCharactersInNames(t *testing.T) {
	res := otlp.Map(request([]*commonpb.KeyValue{kv("service.name", "svc\x00"), kv("gen_ai.agent.description", "\x1b[1mAnswer\tticket 42\x1b[0m\n")},
		span(traceA, "00000000000000a1", "", 0, 5, kv("gen_ai.agent.name", "bot\x07"))), otlp.Options{Now: now})
	if len(res.Rejected) != 0 || len(res.Runs) != 1 {
		t.Fatalf("result = %+v", res)
	}
	if r := res.Runs[0]; r.AgentID != "bot" || r.Goal != "[1mAnswer\tticket 42[0m\n" ||
		runproof.CheckText(r.AgentID) != nil || runproof.CheckProse(r.Goal) != nil {
		t.Errorf("agent %q, goal %q", r.AgentID, r.Goal)
	}
	// A blank name is no name: the next one stands.
	res = otlp.Map(request([]*commonpb.KeyValue{kv("service.name", "svc")},
		span(traceA, "00000000000000a1", "", 0, 5, kv("gen_ai.agent.name", " \x07 "))), otlp.Options{Now: now})
	if len(res.Rejected) != 0 || len(res.Runs) != 1 || res.Runs[0].AgentID != "svc" {
		t.Fatalf("blank agent name: %+v", res)
	}
	// The step type of an agent's invocation names it as the run does.
	for name, want := range map[string]string{"bot\x07": "invoke_agent:bot", "  ": "invoke_agent"} {
		res = otlp.Map(request(nil, span(traceA, "00000000000000a1", "", 0, 5, kv("gen_ai.operation.name", "invoke_agent"),
			kv("gen_ai.agent.name", name))), otlp.Options{Now: now})
		if len(res.Rejected) != 0 || len(res.Runs) != 1 || res.Runs[0].Spans[0].StepType != want {
			t.Errorf("agent %q: %+v, want step type %q", name, res, want)
		}
	}
}

func with(s *tracepb.Span, code tracepb.Status_StatusCode) *tracepb.Span {
	s.Status = &tracepb.Status{Code: code}
	return s
}

func TestSpanTwiceInARequest(t *testing.T) {
	a := span(traceA, "00000000000000a1", "", 0, 5)
	res := otlp.Map(request(nil, a, a), otlp.Options{Now: now})
	if len(res.Runs) != 1 || len(res.Runs[0].Spans) != 1 || len(res.Rejected) != 0 {
		t.Fatalf("the same span twice: %+v", res)
	}
	for _, other := range []*tracepb.Span{span(traceA, "00000000000000a1", "", 0, 5, kv("x", 1)), span(traceA, "00000000000000a1", "", 0, 6)} {
		res = otlp.Map(request(nil, a, other), otlp.Options{Now: now})
		if len(res.Runs[0].Spans) != 1 || len(res.Rejected) != 1 || !strings.Contains(res.Rejected[0].Reason, "twice") {
			t.Fatalf("two spans under one id: %+v", res)
		}
	}
}

func TestContent(t *testing.T) {
	sp := span(traceA, "00000000000000a1", "00000000000000a0", 0, 5,
		kv("s", "é\"<>\n"), kv("i", 42), kv("big", int64(1)<<60), kv("b", true), kv("bytes", []byte{0xff, 0}),
		kv("list", []any{"x", 1, false}), kv("map", []*commonpb.KeyValue{kv("z", 1), kv("a", "y")}),
		kv("dup", 1), kv("dup", 2), kv("empty", nil))
	sp.Kind = tracepb.Span_SPAN_KIND_CLIENT
	sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"}
	sp.Events = []*tracepb.Span_Event{{Name: "gen_ai.choice", TimeUnixNano: sp.StartTimeUnixNano + 1, Attributes: []*commonpb.KeyValue{kv("n", 1)}}, {Name: "end"}}
	sp.Links = []*tracepb.Span_Link{{TraceId: unhex(traceB), SpanId: unhex("00000000000000b1")}}
	req := request([]*commonpb.KeyValue{kv("service.name", "svc")}, sp)
	req.ResourceSpans[0].ScopeSpans[0].Scope = &commonpb.InstrumentationScope{Name: "lib", Version: "1.0"}
	res := otlp.Map(req, otlp.Options{Now: now})
	c := res.Runs[0].Spans[0].Content
	// Written in canonical form already (no doubles here).
	canon, err := runproof.CanonicalJSON(c)
	if err != nil || !bytes.Equal(canon, c) {
		t.Fatalf("content is not canonical (%v):\n%s\n%s", err, c, canon)
	}
	want := `{"otel_span":{"attributes":{"b":true,"big":"1152921504606846976","bytes":"/wA=","dup":2,"empty":null,"i":42,` +
		`"list":["x",1,false],"map":{"a":"y","z":1},"s":"é\"<>\n"},` +
		`"events":[{"attributes":{"n":1},"name":"gen_ai.choice","time":"` + base.Add(1).Format(time.RFC3339Nano) + `"},{"name":"end","time":"1970-01-01T00:00:00Z"}],` +
		`"kind":"client","links":[{"span_id":"00000000000000b1","trace_id":"` + traceB + `"}],"name":"step","parent_span_id":"00000000000000a0",` +
		`"resource":{"service.name":"svc"},"scope":{"name":"lib","version":"1.0"},"span_id":"00000000000000a1",` +
		`"status":{"code":"error","message":"boom"},"trace_id":"` + traceA + `"}}`
	if string(c) != want {
		t.Fatalf("content\n%s\nwant\n%s", c, want)
	}
	// Its ids read back; content of another shape, or not of a span's ids, has none.
	if tr, id, ok := otlp.SpanOf(c); !ok || tr != traceA || id != "00000000000000a1" {
		t.Errorf("SpanOf: %q %q %v", tr, id, ok)
	}
	for _, other := range []string{``, `{"prompt":"hi"}`, `{"otel_span":{"span_id":"00000000000000a1","trace_id":"xyz"}}`,
		`{"otel_span":{"span_id":"00000000000000A1","trace_id":"` + traceA + `"}}`, `{"otel_span":{"span_id":"a1","trace_id":"` + traceA + `"}}`} {
		if _, _, ok := otlp.SpanOf([]byte(other)); ok {
			t.Errorf("SpanOf(%s) reads a span", other)
		}
	}
	// Doubles are JSON numbers; what cannot be one is a string.
	d := mapOne(t, span(traceA, "00000000000000a1", "", 0, 5, kv("d", 0.1), kv("e", 1e300)))
	var v struct {
		Span struct{ Attributes map[string]any } `json:"otel_span"`
	}
	if err := json.Unmarshal(d.Content, &v); err != nil || v.Span.Attributes["d"] != 0.1 || v.Span.Attributes["e"] != 1e300 {
		t.Fatalf("doubles: %s (%v)", d.Content, err)
	}
}

func ExampleMap() {
	req := request([]*commonpb.KeyValue{kv("service.name", "support-bot")},
		span(traceA, "00000000000000a2", "00000000000000a1", 100, 800, kv("gen_ai.operation.name", "chat"),
			kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.input_tokens", 1200), kv("gen_ai.usage.output_tokens", 300)),
		span(traceA, "00000000000000a3", "00000000000000a1", 1000, 250, kv("gen_ai.operation.name", "execute_tool"),
			kv("gen_ai.tool.name", "web_search"), kv("runproof.cost_cents", 0.5)),
	)
	res := otlp.Map(req, otlp.Options{Now: now})
	for _, r := range res.Runs {
		fmt.Printf("run %s (%s) of agent %s\n", r.ID, r.Source, r.AgentID)
		for _, s := range r.Spans {
			fmt.Printf("  %-24s tokens %d+%d  cost %s cents  %s ms\n", s.StepType, s.InputTokens, s.OutputTokens,
				runproof.FormatFixed(s.CostMicrocents, runproof.MicrocentsPerCent), runproof.FormatFixed(s.DurationMicros, runproof.MicrosPerMilli))
		}
	}
	// Output:
	// run 0af7651916cd43dd8448eb211c80319c (trace_id) of agent support-bot
	//   chat:gpt-4o              tokens 1200+300  cost 0.6 cents  800 ms
	//   execute_tool:web_search  tokens 0+0  cost 0.5 cents  250 ms
}

// TestUnpriced: spans with tokens of no known price are counted by model,
// accepted ones only, the model's name cut to 100 bytes.
func TestUnpriced(t *testing.T) {
	long := strings.Repeat("m", 300)
	spans := []*tracepb.Span{
		span(traceA, "00f067aa0ba902b1", "", 0, 10, kv("gen_ai.request.model", "o3-pro"), kv("gen_ai.usage.input_tokens", 10)),
		span(traceA, "00f067aa0ba902b2", "", 0, 10, kv("gen_ai.request.model", long), kv("gen_ai.usage.input_tokens", 10)),
		span(traceA, "00f067aa0ba902b3", "", 0, 10, kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.input_tokens", 10)),
		span(traceA, "00f067aa0ba902b4", "", 0, 10, kv("gen_ai.request.model", "o3-pro")), // no tokens
	}
	res := otlp.Map(request(nil, spans...), otlp.Options{Now: now})
	want := []otlp.Unpriced{{Model: long[:100], Spans: 1}, {Model: "o3-pro", Spans: 1}} // by model
	if !slices.Equal(res.Unpriced, want) {
		t.Errorf("unpriced %+v, want %+v", res.Unpriced, want)
	}
	rejected := span(traceB, "00f067aa0ba902b5", "", 0, 10, kv("runproof.run_id", "not a valid id!"),
		kv("gen_ai.request.model", "o3-pro"), kv("gen_ai.usage.input_tokens", 10))
	if res := otlp.Map(request(nil, rejected), otlp.Options{Now: now}); len(res.Rejected) != 1 || len(res.Unpriced) != 0 {
		t.Errorf("a rejected span: rejected %v, unpriced %+v", res.Rejected, res.Unpriced)
	}
}
