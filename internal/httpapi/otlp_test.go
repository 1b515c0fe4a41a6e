package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// fixedIDs gives trace and span ids from a counter, so that two exports of
// the same made-up run carry the same ids.
type fixedIDs struct {
	mu   sync.Mutex
	seed byte
	n    uint64
}

func (g *fixedIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	tid[0], tid[15] = 0x4b, g.seed
	return tid, g.NewSpanID(ctx, tid)
}

func (g *fixedIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	var sid trace.SpanID
	binary.BigEndian.PutUint64(sid[:], g.n)
	return sid
}

// recordingExporter keeps the outcome of every export, as an agent's
// OpenTelemetry error handler would see it.
type recordingExporter struct {
	sdktrace.SpanExporter
	mu   sync.Mutex
	errs []error
}

func (r *recordingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := r.SpanExporter.ExportSpans(ctx, spans)
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	return err
}

// runAgent plays a made-up support agent instrumented with the OpenTelemetry
// SDK and the GenAI conventions: a root invoke_agent span and four turns of
// a chat call (gpt-4o, 1000 input and 200 output tokens: 0.45 cents at list
// price) and a web search (0.05 cents, given in runproof.cost_cents). The
// agent's name and goal are resource attributes, so that every export
// carries them. Every span is exported when it ends, one request each. It
// returns the trace id and the outcome of each export.
func runAgent(t *testing.T, url, key string, seed byte, opts ...otlptracehttp.Option) (string, []error) {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, append([]otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(url + "/v1/traces"),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + key}),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingExporter{SpanExporter: exp}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) // rec keeps the errors
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(rec), sdktrace.WithIDGenerator(&fixedIDs{seed: seed}),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "support-svc"),
			attribute.String("gen_ai.agent.name", "support-bot"), attribute.String("gen_ai.agent.description", "Answer ticket 4711"))))
	tr := tp.Tracer("example.com/support-agent")

	t0 := base
	ctx, root := tr.Start(ctx, "invoke_agent support-bot", trace.WithTimestamp(t0), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.name", "support-bot")))
	for turn := range 4 {
		at := t0.Add(time.Duration(turn) * 10 * time.Second)
		_, chat := tr.Start(ctx, "chat gpt-4o", trace.WithTimestamp(at.Add(time.Second)), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.request.model", "gpt-4o"),
				attribute.String("gen_ai.response.model", "gpt-4o-2024-08-06"),
				attribute.Int("gen_ai.usage.input_tokens", 1000), attribute.Int("gen_ai.usage.output_tokens", 200)))
		chat.AddEvent("gen_ai.choice", trace.WithTimestamp(at.Add(2*time.Second)), trace.WithAttributes(attribute.String("finish_reason", "tool_calls")))
		chat.End(trace.WithTimestamp(at.Add(3 * time.Second)))
		_, tool := tr.Start(ctx, "execute_tool web_search", trace.WithTimestamp(at.Add(4*time.Second)),
			trace.WithAttributes(attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", "web_search"),
				attribute.Float64("runproof.cost_cents", 0.05)))
		tool.End(trace.WithTimestamp(at.Add(5 * time.Second)))
	}
	root.SetStatus(codes.Ok, "")
	root.End(trace.WithTimestamp(t0.Add(40 * time.Second)))
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return root.SpanContext().TraceID().String(), rec.errs
}

func TestOTLPAgentRun(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 1, "action": "stop"}))

		traceID, errs := runAgent(t, e.url, agent, 1)
		if len(errs) != 9 {
			t.Fatalf("%d exports, want 9", len(errs))
		}
		for i, err := range errs {
			// From the inflection on, every answer tells the agent it is stopped.
			if stopped := err != nil && strings.Contains(err.Error(), "is stopped by a policy"); stopped != (i >= 4) {
				t.Errorf("export %d: %v", i, err)
			}
		}

		var run runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceID, agent, nil)).decode(t, &run)
		var totals struct {
			CostCents  float64 `json:"cost_cents"`
			DurationMs float64 `json:"duration_ms"`
		}
		var envelope struct {
			Totals *struct {
				CostCents  float64 `json:"cost_cents"`
				DurationMs float64 `json:"duration_ms"`
			} `json:"totals"`
		}
		envelope.Totals = &totals
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+traceID+"/envelope", admin, nil)).decode(t, &envelope)
		if run.ID != traceID || run.TraceID != traceID || run.AgentID != "support-bot" || run.Goal != "Answer ticket 4711" ||
			run.Status != runproof.RunStopped || run.IncidentID == "" || run.CompletedAt == nil || !run.CompletedAt.Equal(base.Add(40*time.Second)) ||
			!run.StartedAt.Equal(base.Add(time.Second)) || run.Totals.Steps != 9 || run.Totals.InputTokens != 4000 || run.Totals.OutputTokens != 800 ||
			totals.CostCents != 2 || totals.DurationMs != 4*3000+40000 {
			t.Fatalf("run = %+v, totals %+v", run, totals)
		}

		var tr struct {
			Steps []struct {
				StepIndex    int64   `json:"step_index"`
				Timestamp    string  `json:"timestamp"`
				StepType     string  `json:"step_type"`
				InputTokens  int64   `json:"input_tokens"`
				OutputTokens int64   `json:"output_tokens"`
				Tokens       int64   `json:"tokens"`
				CostCents    float64 `json:"cost_cents"`
				DurationMs   float64 `json:"duration_ms"`
				Status       string  `json:"status"`
				IsInflection bool    `json:"is_inflection"`
				Content      struct {
					Span struct {
						TraceID    string         `json:"trace_id"`
						SpanID     string         `json:"span_id"`
						Parent     string         `json:"parent_span_id"`
						Kind       string         `json:"kind"`
						Attributes map[string]any `json:"attributes"`
						Resource   map[string]any `json:"resource"`
						Events     []any          `json:"events"`
					} `json:"otel_span"`
				} `json:"content"`
			} `json:"steps"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+traceID+"/trace", admin, nil)).decode(t, &tr)
		if len(tr.Steps) != 9 {
			t.Fatalf("%d steps, want 9", len(tr.Steps))
		}
		wantStatus := []string{"ok", "ok", "warning", "warning", "violation", "violation", "violation", "violation", "violation"}
		for i, s := range tr.Steps {
			chat, root := i%2 == 0 && i < 8, i == 8
			wantType, wantCost, wantIn, wantOut, wantMs := "execute_tool:web_search", 0.05, int64(0), int64(0), 1000.0
			switch {
			case chat:
				wantType, wantCost, wantIn, wantOut, wantMs = "chat:gpt-4o", 0.45, 1000, 200, 2000
			case root:
				wantType, wantCost, wantMs = "invoke_agent:support-bot", 0, 40000
			}
			if s.StepIndex != int64(i) || s.StepType != wantType || s.CostCents != wantCost || s.InputTokens != wantIn ||
				s.OutputTokens != wantOut || s.Tokens != wantIn+wantOut || s.DurationMs != wantMs || s.Status != wantStatus[i] ||
				s.IsInflection != (i == 4) || s.Content.Span.TraceID != traceID || len(s.Content.Span.SpanID) != 16 ||
				(s.Content.Span.Parent == "") != root || s.Content.Span.Resource["service.name"] != "support-svc" {
				t.Errorf("step %d = %+v", i, s)
			}
		}
		if first := tr.Steps[0].Content.Span; first.Kind != "client" || first.Attributes["gen_ai.usage.input_tokens"] != 1000.0 || len(first.Events) != 1 {
			t.Errorf("content of step 0 = %+v", first)
		}

		var inc runproof.Incident
		e.must(200, e.do("GET", "/api/v1/incidents/"+run.IncidentID, admin, nil)).decode(t, &inc)
		if inc.RunID != traceID || inc.PolicyName != "cost cap" || inc.ViolationType != runproof.PolicyCostLimit ||
			inc.ThresholdValue != "1" || inc.ActualValue != "1.45" || inc.InflectionStepIndex != 4 ||
			!inc.ViolationAt.Equal(base.Add(21*time.Second)) {
			t.Fatalf("incident = %+v", inc)
		}

		// The agent sends it all again (an exporter retry): nothing changes.
		if _, errs := runAgent(t, e.url, agent, 1); len(errs) != 9 || errs[0] == nil || strings.Contains(errs[0].Error(), "rejected:") {
			t.Fatalf("re-send: %v", errs)
		}
		var again runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceID, agent, nil)).decode(t, &again)
		if again.Totals != run.Totals {
			t.Fatalf("after a re-send the totals are %+v, want %+v", again.Totals, run.Totals)
		}
		// Its root span ended the stopped run: a span after that is refused.
		late := pbSpan(traceID, "00000000000000ff", "", "cleanup", 50, 51)
		p := partial(t, e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, pbRequest(late))))
		if p.GetRejectedSpans() != 1 || !strings.Contains(p.GetErrorMessage(), "was stopped, and its agent ended it") {
			t.Fatalf("a span after the end: %v", p)
		}
	})
}

// TestOTLPEncodingsAgree exports the same run as protobuf and as gzipped
// JSON, through the SDK, into two stores: the stored steps are the same
// bytes, whatever the engine.
func TestOTLPEncodingsAgree(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		stores := []runproof.Store{store, storetest.OpenSQLite(t)}
		opts := [][]otlptracehttp.Option{
			{otlptracehttp.WithEncoding(otlptracehttp.EncodingProtobuf)},
			{otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON), otlptracehttp.WithCompression(otlptracehttp.GzipCompression)},
		}
		var got [2][]byte
		for i, st := range stores {
			e := newEnv(t, st)
			admin := e.key("acme", runproof.RoleAdmin)
			e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 1, "action": "stop"}))
			traceID, errs := runAgent(t, e.url, e.key("acme", runproof.RoleAgent), 2, opts[i]...)
			if errs[0] != nil {
				t.Fatalf("export: %v", errs[0])
			}
			steps, err := st.ListSteps(context.Background(), runproof.ListStepsParams{TenantID: "acme", RunID: traceID})
			if err != nil {
				t.Fatal(err)
			}
			for j := range steps {
				steps[j].RecordedAt = time.Time{}
				for k := range steps[j].Findings {
					steps[j].Findings[k].PolicyID = "" // ids differ from store to store
				}
			}
			got[i], _ = json.Marshal(steps)
			if len(steps) != 9 {
				t.Fatalf("%d steps stored, want 9", len(steps))
			}
		}
		if !bytes.Equal(got[0], got[1]) {
			t.Fatalf("protobuf and JSON exports differ:\n%s\n%s", got[0], got[1])
		}
	})
}

// --- hand-made OTLP requests ------------------------------------------------

func kv(k string, v any) *commonpb.KeyValue {
	var av *commonpb.AnyValue
	switch v := v.(type) {
	case string:
		av = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
	case int:
		av = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(v)}}
	case float64:
		av = &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}
	}
	return &commonpb.KeyValue{Key: k, Value: av}
}

func unhex(s string) []byte { b, _ := hex.DecodeString(s); return b }

// pbSpan is a span of trace tid; offsets are seconds after base.
func pbSpan(tid, sid, parent, name string, from, to int, attrs ...*commonpb.KeyValue) *tracepb.Span {
	return &tracepb.Span{TraceId: unhex(tid), SpanId: unhex(sid), ParentSpanId: unhex(parent), Name: name,
		StartTimeUnixNano: uint64(base.Add(time.Duration(from) * time.Second).UnixNano()),
		EndTimeUnixNano:   uint64(base.Add(time.Duration(to) * time.Second).UnixNano()), Attributes: attrs}
}

func pbRequest(spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", "billing-agent")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

func pbBody(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonBody is m in OTLP JSON: protojson, with hex ids.
func jsonBody(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
					raw, _ := base64.StdEncoding.DecodeString(s)
					v[k] = strings.ToUpper(hex.EncodeToString(raw)) // OTLP hex is case-insensitive
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	out, _ := json.Marshal(v)
	return out
}

func (e *env) postOTLP(key, contentType, encoding string, body []byte) response {
	e.t.Helper()
	return e.postOTLPTo("/v1/traces", key, contentType, encoding, body)
}

// postOTLPTo is postOTLP to another path (or with a query).
func (e *env) postOTLPTo(path, key, contentType, encoding string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// otlpUnmarshal decodes an OTLP answer in the encoding it declares.
func otlpUnmarshal(t *testing.T, r response, m proto.Message) {
	t.Helper()
	var err error
	switch ct := r.header.Get("Content-Type"); ct {
	case "application/x-protobuf":
		err = proto.Unmarshal(r.body, m)
	case "application/json":
		err = protojson.Unmarshal(r.body, m)
	default:
		t.Fatalf("Content-Type %q, body %s", ct, r.body)
	}
	if err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// partial returns the partial success of a 200 answer.
func partial(t *testing.T, r response) *coltracepb.ExportTracePartialSuccess {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var out coltracepb.ExportTraceServiceResponse
	otlpUnmarshal(t, r, &out)
	return out.GetPartialSuccess()
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

const (
	traceA = "0af7651916cd43dd8448eb211c80319c"
	traceB = "1bf7651916cd43dd8448eb211c80319d"
	traceC = "2cf7651916cd43dd8448eb211c80319e"
	traceD = "3df7651916cd43dd8448eb211c80319f"
)

func (e *env) runCount(admin string) int {
	e.t.Helper()
	var list struct{ Items []runproof.Run }
	e.must(200, e.do("GET", "/api/v1/logs/llm-runs", admin, nil)).decode(e.t, &list)
	return len(list.Items)
}

func TestOTLPRouteIsDocumented(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody map[string]any `json:"requestBody"`
			Security    []any          `json:"security"`
			Responses   map[string]any `json:"responses"`
		} `json:"paths"`
	}
	e.must(200, e.do("GET", "/openapi.json", "", nil)).decode(t, &doc)
	op, ok := doc.Paths["/v1/traces"]["post"]
	if !ok || op.RequestBody == nil || len(op.Security) == 0 || op.Responses["200"] == nil {
		t.Fatalf("POST /v1/traces in the OpenAPI document: %+v", op)
	}
}

func TestOTLPBadRequests(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent, viewer := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleViewer)
		valid := pbRequest(pbSpan(traceA, "00f067aa0ba902b7", "", "chat", 1, 2, kv("gen_ai.operation.name", "chat")))
		bomb := gzipped(make([]byte, 64<<20))
		huge := make([]byte, 4<<20+1)
		var many []*tracepb.Span // tiny, so many fit the body limit
		for range otlp.MaxSpans + 1 {
			many = append(many, &tracepb.Span{})
		}
		for _, c := range []struct {
			name, key, contentType, encoding string
			body                             []byte
			status                           int
			answer                           string // Content-Type of the answer
			detail                           string
		}{
			{"wrong content type", agent, "text/plain", "", pbBody(t, valid), 415, "application/x-protobuf", "Content-Type"},
			{"no content type", agent, "", "", pbBody(t, valid), 415, "application/x-protobuf", "Content-Type"},
			{"malformed JSON", agent, "application/json", "", []byte(`{"resourceSpans": [`), 400, "application/json", "not valid JSON"},
			{"JSON of another shape", agent, "application/json", "", []byte(`{"resourceSpans": {"x": 1}}`), 400, "application/json", "ExportTraceServiceRequest"},
			{"id not in hex", agent, "application/json", "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`), 400, "application/json", "hex"},
			{"malformed protobuf", agent, "application/x-protobuf", "", []byte{0xff, 0xff, 0xff, 0xff}, 400, "application/x-protobuf", "protobuf"},
			{"oversize body", agent, "application/x-protobuf", "", huge, 413, "application/x-protobuf", "4194304"},
			{"gzip bomb", agent, "application/x-protobuf", "gzip", bomb, 413, "application/x-protobuf", "decompressed"},
			{"too many spans", agent, "application/x-protobuf", "gzip", gzipped(pbBody(t, pbRequest(many...))), 413, "application/x-protobuf", "more than 10000 spans"},
			{"too many spans, JSON", agent, "application/json", "", jsonBody(t, pbRequest(many...)), 413, "application/json", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"},
			{"not gzip", agent, "application/json", "gzip", jsonBody(t, valid), 400, "application/json", "gzip"},
			{"unknown encoding", agent, "application/json", "br", jsonBody(t, valid), 415, "application/json", "br"},
			{"no key", "", "application/x-protobuf", "", pbBody(t, valid), 401, "application/problem+json", ""},
			{"viewer key", viewer, "application/x-protobuf", "", pbBody(t, valid), 403, "application/problem+json", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.postOTLP(c.key, c.contentType, c.encoding, c.body)
				if r.status != c.status || r.header.Get("Content-Type") != c.answer {
					t.Fatalf("status %d %s, want %d %s: %.300s", r.status, r.header.Get("Content-Type"), c.status, c.answer, r.body)
				}
				if c.detail != "" {
					var st statuspb.Status
					otlpUnmarshal(t, r, &st)
					if st.Code != 3 || !strings.Contains(st.Message, c.detail) {
						t.Fatalf("status = %v, want code 3 and %q", &st, c.detail)
					}
				}
			})
		}
		// A query, which exporters never send, is refused as OTLP refuses.
		for _, ct := range []string{"application/json", "application/x-protobuf"} {
			r := e.postOTLPTo("/v1/traces?x=1", agent, ct, "", jsonBody(t, valid))
			var st statuspb.Status
			if r.status != 400 || r.header.Get("Content-Type") != ct {
				t.Fatalf("with a query: status %d %s, want 400 %s: %.300s", r.status, r.header.Get("Content-Type"), ct, r.body)
			}
			if otlpUnmarshal(t, r, &st); st.Code != 3 || !strings.Contains(st.Message, "x: is not a query parameter") {
				t.Errorf("with a query: %v", &st)
			}
		}
		if n := e.runCount(admin); n != 0 {
			t.Fatalf("%d runs stored after bad requests", n)
		}
		// The same span, well sent, is taken in every encoding.
		for _, r := range []response{
			e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, valid)),
			e.postOTLP(agent, "application/x-protobuf", "gzip", gzipped(pbBody(t, valid))),
			e.postOTLP(agent, "application/json; charset=utf-8", "", jsonBody(t, valid)),
			e.postOTLP(agent, "application/json", "gzip", gzipped(jsonBody(t, valid))),
		} {
			if p := partial(t, r); p != nil {
				t.Fatalf("partial success %v", p)
			}
		}
		var run runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceA, agent, nil)).decode(t, &run)
		if run.Totals.Steps != 1 || run.AgentID != "billing-agent" {
			t.Fatalf("run = %+v", run)
		}
	})
}

func TestOTLPRejectedSpans(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		noStart := pbSpan(traceA, "00000000000000b2", "", "chat", 1, 2)
		noStart.StartTimeUnixNano = 0
		bad := []*tracepb.Span{
			noStart,
			pbSpan(traceA, "00b3", "", "chat", 1, 2), // short span id
			pbSpan(traceA, "00000000000000b4", "", "", 1, 2),                                 // no name, no operation
			pbSpan(traceA, "00000000000000b6", "", "chat", 3, 2),                             // ends before it starts
			pbSpan("00000000000000000000000000000000", "00000000000000b7", "", "chat", 1, 2), // no trace id
			pbSpan(traceB, "00000000000000b9", "", "chat", 1, 2, kv("runproof.run_id", "not/valid")),
		}
		// Numbers that cannot be read count as absent: the spans are steps.
		unread := []*tracepb.Span{
			pbSpan(traceA, "00000000000000b5", "00000000000000a1", "chat", 1, 2, kv("gen_ai.usage.input_tokens", -5)),
			pbSpan(traceA, "00000000000000b8", "00000000000000a1", "chat", 1, 2, kv("runproof.cost_cents", "a lot")),
		}
		// All spans rejected: 200 with partial success, nothing stored.
		p := partial(t, e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, pbRequest(bad...))))
		if p.GetRejectedSpans() != int64(len(bad)) || !strings.Contains(p.GetErrorMessage(), "span 00000000000000b2: start_time_unix_nano is required") ||
			!strings.Contains(p.GetErrorMessage(), "and 1 more") {
			t.Fatalf("partial success = %v", p)
		}
		if n := e.runCount(admin); n != 0 {
			t.Fatalf("%d runs stored for rejected spans", n)
		}
		// With one good span, only that one is stored.
		good := pbSpan(traceA, "00000000000000a1", "", "chat", 1, 2, kv("gen_ai.operation.name", "chat"))
		p = partial(t, e.postOTLP(agent, "application/json", "", jsonBody(t, pbRequest(append(append(bad, good), unread...)...))))
		if p.GetRejectedSpans() != int64(len(bad)) || !strings.Contains(p.GetErrorMessage(), "counted as absent (the spans are stored): "+
			"span 00000000000000b5: gen_ai.usage.input_tokens must be a whole number from 0 to 9007199254740992 (2^53): counted as 0; "+
			"span 00000000000000b8: runproof.cost_cents must be a number: counted as absent") {
			t.Fatalf("partial success = %v", p)
		}
		var run runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceA, agent, nil)).decode(t, &run)
		if run.Totals.Steps != 3 || run.Totals.InputTokens != 0 || run.Totals.CostMicrocents != 0 || e.runCount(admin) != 1 {
			t.Fatalf("run = %+v", run)
		}
		// The operator sees them too.
		if m := string(e.must(200, e.do("GET", "/metrics", "", nil)).body); !strings.Contains(m, fmt.Sprintf("\nrunproof_otlp_spans_rejected_total %d\n", 2*len(bad))) {
			t.Errorf("metrics do not count the rejected spans:\n%s", m)
		}
	})
}

// TestOTLPUnpricedSpans: spans with tokens of no known price are stored at
// no cost, every one accepted, and the exporter is told which models
// (partial_success with no span rejected, as OTLP allows for warnings).
func TestOTLPUnpricedSpans(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	agent := e.key("acme", runproof.RoleAgent)
	tokens := []*commonpb.KeyValue{kv("gen_ai.operation.name", "chat"), kv("gen_ai.usage.input_tokens", 1000)}
	spans := []*tracepb.Span{
		pbSpan(traceA, "00000000000000c1", "00000000000000f1", "chat", 1, 2, append(tokens, kv("gen_ai.request.model", "o3-pro"))...),
		pbSpan(traceA, "00000000000000c2", "00000000000000f1", "chat", 2, 3, append(tokens, kv("gen_ai.request.model", "o3-pro"))...),
		pbSpan(traceA, "00000000000000c3", "00000000000000f1", "chat", 3, 4, tokens...), // no model
		pbSpan(traceA, "00000000000000c4", "00000000000000f1", "chat", 4, 5, append(tokens, kv("gen_ai.request.model", "gpt-4o"))...),
		pbSpan(traceA, "00000000000000c5", "00000000000000f1", "chat", 5, 6, append(tokens, kv("gen_ai.request.model", "o3-pro"),
			kv("runproof.cost_cents", 20))...), // its cost given
		pbSpan(traceA, "00000000000000c6", "00000000000000f1", "tool", 6, 7, kv("gen_ai.operation.name", "execute_tool")), // no tokens
	}
	p := partial(t, e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, pbRequest(spans...))))
	const want = `tokens of no known price, counted as costing 0: no model named (1 span), model "o3-pro" (2 spans); send runproof.cost_cents`
	if p.GetRejectedSpans() != 0 || !strings.HasPrefix(p.GetErrorMessage(), want) {
		t.Fatalf("partial success = %v, want no span rejected and %q…", p, want)
	}
	var envelope struct {
		Totals struct {
			Steps     int64   `json:"steps"`
			CostCents float64 `json:"cost_cents"`
		} `json:"totals"`
	}
	e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+traceA+"/envelope", e.key("acme", runproof.RoleAdmin), nil)).decode(t, &envelope)
	if got := envelope.Totals; got.Steps != 6 || got.CostCents != 0.25+20 { // gpt-4o's 1000 input tokens, and 20 cents
		t.Errorf("totals = %+v, want 6 steps costing 20.25 cents", got)
	}
}

func TestOTLPLateAndRepeatedSpans(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		agent := e.key("acme", runproof.RoleAgent)
		post := func(spans ...*tracepb.Span) *coltracepb.ExportTracePartialSuccess {
			t.Helper()
			return partial(t, e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, pbRequest(spans...))))
		}
		root := "00000000000000f0"
		c1 := pbSpan(traceA, "00000000000000c1", root, "plan", 5, 6)
		c2 := pbSpan(traceA, "00000000000000c2", root, "search", 2, 3) // started earlier, arrives later
		c3 := pbSpan(traceA, "00000000000000c3", root, "answer", 7, 8)
		c4 := pbSpan(traceA, "00000000000000c4", root, "answer", 7, 8) // same times as c3: the request orders
		if p := post(c1); p != nil {
			t.Fatal(p)
		}
		if p := post(c4, c2, c3); p != nil {
			t.Fatal(p)
		}
		// A re-send is recognised by its span id; the same id with other
		// content is rejected.
		if p := post(c1, c2); p != nil {
			t.Fatalf("re-send: %v", p)
		}
		changed := pbSpan(traceA, "00000000000000c1", root, "plan", 5, 6, kv("extra", "x"))
		if p := post(changed); p.GetRejectedSpans() != 1 || !strings.Contains(p.GetErrorMessage(), "already stored as step 0 with other content") {
			t.Fatalf("changed span: %v", p)
		}
		// The root span ends the run; its status ERROR makes it failed.
		rs := pbSpan(traceA, root, "", "invoke_agent", 1, 9)
		rs.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "gave up"}
		if p := post(rs); p != nil {
			t.Fatal(p)
		}
		late := pbSpan(traceA, "00000000000000c5", root, "cleanup", 9, 11) // ends after the run
		if p := post(late); p.GetRejectedSpans() != 1 || !strings.Contains(p.GetErrorMessage(), "is failed: it takes no more spans (this one ended after the run did)") {
			t.Fatalf("late span: %v", p)
		}
		if p := post(c3); p != nil { // a re-send after the end is still fine
			t.Fatalf("re-send after the end: %v", p)
		}
		var tr struct {
			Steps []struct {
				StepType  string    `json:"step_type"`
				Timestamp time.Time `json:"timestamp"`
			}
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+traceA+"/trace", e.key("acme", runproof.RoleViewer), nil)).decode(t, &tr)
		var types []string
		for _, s := range tr.Steps {
			types = append(types, s.StepType)
		}
		if got := strings.Join(types, " "); got != "plan search answer answer invoke_agent" {
			t.Fatalf("steps = %s", got)
		}
		var run runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceA, agent, nil)).decode(t, &run)
		if run.Status != runproof.RunFailed || run.CompletedAt == nil || !run.CompletedAt.Equal(base.Add(9*time.Second)) ||
			!run.StartedAt.Equal(base.Add(5*time.Second)) || run.AgentID != "billing-agent" {
			t.Fatalf("run = %+v", run)
		}

		// Two traces of one conversation are one run, which their root
		// spans do not end.
		conv := kv("gen_ai.conversation.id", "conv-42")
		p := post(pbSpan(traceB, "00000000000000d1", "", "invoke_agent", 20, 21, conv),
			pbSpan("2bf7651916cd43dd8448eb211c80319e", "00000000000000d2", "", "invoke_agent", 22, 23, conv))
		if p != nil {
			t.Fatal(p)
		}
		var convRun runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/conv-42", agent, nil)).decode(t, &convRun)
		if convRun.Totals.Steps != 2 || convRun.Status != runproof.RunRunning || convRun.TraceID != traceB {
			t.Fatalf("conversation run = %+v", convRun)
		}

		// A root span that arrives before its last child (exporters that
		// send each span as it ends, side by side) ends the run; the child,
		// which ended by then, is stored all the same, for a while.
		now := time.Now()
		at := func(sp *tracepb.Span, from, to time.Duration) *tracepb.Span {
			sp.StartTimeUnixNano, sp.EndTimeUnixNano = uint64(now.Add(from).UnixNano()), uint64(now.Add(to).UnixNano())
			return sp
		}
		const traceC, rootC = "3cf7651916cd43dd8448eb211c80319f", "00000000000000e0"
		if p := post(at(pbSpan(traceC, rootC, "", "invoke_agent", 0, 0), -3*time.Second, -time.Second)); p != nil {
			t.Fatal(p)
		}
		if p := post(at(pbSpan(traceC, "00000000000000e1", rootC, "answer", 0, 0), -2*time.Second, -time.Second)); p != nil {
			t.Fatalf("the root's last child, after it: %v", p)
		}
		if p := post(at(pbSpan(traceC, "00000000000000e2", rootC, "answer", 0, 0), -2*time.Second, 2*time.Second)); p.GetRejectedSpans() != 1 {
			t.Fatalf("a child that ended after its root, after it: %v", p)
		}
		var runC runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceC, agent, nil)).decode(t, &runC)
		if runC.Totals.Steps != 2 || runC.Status != runproof.RunCompleted {
			t.Fatalf("run of a child after its root = %+v", runC)
		}
	})
}

// TestOTLPHandWrittenJSON sends OTLP JSON as the specification writes it
// (upper-case hex ids, enums as numbers, 64-bit integers as strings), then
// the same span as protobuf: the second is recognised as a re-send.
func TestOTLPHandWrittenJSON(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	agent := e.key("acme", runproof.RoleAgent)
	start := base.Add(time.Second).UnixNano()
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing-agent"}}]},
	 "scopeSpans":[{"scope":{"name":"manual"},"spans":[{
	  "traceId":"0AF7651916CD43DD8448EB211C80319C","spanId":"00F067AA0BA902B7","name":"chat gpt-4o-mini","kind":3,
	  "startTimeUnixNano":"` + itoa(start) + `","endTimeUnixNano":"` + itoa(start+1_500_000_000) + `",
	  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
	   {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-mini"}},
	   {"key":"gen_ai.usage.input_tokens","value":{"intValue":"2000"}},
	   {"key":"gen_ai.usage.output_tokens","value":{"intValue":1000}}],
	  "status":{"code":1},"futureField":true}]}]}]}`
	if p := partial(t, e.postOTLP(agent, "application/json", "", []byte(body))); p != nil {
		t.Fatal(p)
	}
	same := pbRequest(pbSpan(traceA, "00f067aa0ba902b7", "", "chat gpt-4o-mini", 1, 1,
		kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "gpt-4o-mini"),
		kv("gen_ai.usage.input_tokens", 2000), kv("gen_ai.usage.output_tokens", 1000)))
	sp := same.ResourceSpans[0].ScopeSpans[0]
	sp.Scope = &commonpb.InstrumentationScope{Name: "manual"}
	sp.Spans[0].Kind = tracepb.Span_SPAN_KIND_CLIENT
	sp.Spans[0].EndTimeUnixNano = uint64(start + 1_500_000_000)
	sp.Spans[0].Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	if p := partial(t, e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, same))); p != nil {
		t.Fatalf("protobuf of the same span: %v", p)
	}
	var run runproof.Run
	e.must(200, e.do("GET", "/api/v1/runs/"+traceA, agent, nil)).decode(t, &run)
	// 2000 × $0.15 + 1000 × $0.60 per million tokens = $0.0009 = 0.09 cents.
	if run.Totals.Steps != 1 || run.Totals.Tokens() != 3000 || run.Status != runproof.RunCompleted {
		t.Fatalf("run = %+v", run)
	}
	var tr struct {
		Steps []struct {
			StepType   string  `json:"step_type"`
			CostCents  float64 `json:"cost_cents"`
			DurationMs float64 `json:"duration_ms"`
		}
	}
	e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+traceA+"/trace", e.key("acme", runproof.RoleViewer), nil)).decode(t, &tr)
	if len(tr.Steps) != 1 || tr.Steps[0].StepType != "chat:gpt-4o-mini" || tr.Steps[0].CostCents != 0.09 || tr.Steps[0].DurationMs != 1500 {
		t.Fatalf("steps = %+v", tr.Steps)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestOTLPIntoANativeRun: a run opened through the native API, with a
// step of its own, takes the spans of its trace after it.
func TestOTLPIntoANativeRun(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	agent := e.key("acme", runproof.RoleAgent)
	e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": traceA, "trace_id": traceA, "agent_id": "planner", "goal": "plan a trip"}))
	e.must(200, e.do("POST", "/api/v1/runs/"+traceA+"/steps", agent, steps(0, 0, 1, 10)))
	if p := partial(t, e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, pbRequest(pbSpan(traceA, "00000000000000a1", "00000000000000a0", "search", 2, 3))))); p != nil {
		t.Fatal(p)
	}
	var run runproof.Run
	e.must(200, e.do("GET", "/api/v1/runs/"+traceA, agent, nil)).decode(t, &run)
	if run.AgentID != "planner" || run.Goal != "plan a trip" || run.Totals.Steps != 2 {
		t.Fatalf("run = %+v", run)
	}
}

// TestOTLPManyTraces sends one export of many one-span traces, which are
// stored several at a time: every run is stored and ended by its span,
// and the answer tells of the rejected spans and the stopped runs in the
// order of the export, not in the order their runs were done. Trace 7,
// which stops first, has many more spans than the others, so that it is
// done after trace 9, which stops next.
func TestOTLPManyTraces(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 1, "action": "stop"}))
		const traces, long = 120, 400
		trace := func(i int) string { return fmt.Sprintf("%032x", 0xa000+i) }
		var spans []*tracepb.Span
		for i := range traces {
			cost := 0.5
			if i == 7 || i == 9 || i == 47 { // these break the cost cap
				cost = 2
			}
			sp := pbSpan(trace(i), fmt.Sprintf("%016x", 0xb000+i), "", "chat", 1, 2,
				kv("gen_ai.operation.name", "chat"), kv("runproof.cost_cents", cost))
			if i%40 == 30 { // traces 30, 70 and 110 are refused when stored: they are dated an hour ahead
				future := uint64(time.Now().Add(time.Hour).UnixNano())
				sp.StartTimeUnixNano, sp.EndTimeUnixNano = future, future+1
			}
			spans = append(spans, sp)
		}
		for k := range long - 1 {
			spans = append(spans, pbSpan(trace(7), fmt.Sprintf("%016x", 0xc000+k), fmt.Sprintf("%016x", 0xb000+7), "chat", 3+k, 4+k,
				kv("gen_ai.operation.name", "chat")))
		}
		p := partial(t, e.postOTLP(agent, "application/x-protobuf", "", pbBody(t, pbRequest(spans...))))
		msg := p.GetErrorMessage()
		refused, stopped := []int{30, 70, 110}, []int{7, 9, 47}
		if p.GetRejectedSpans() != int64(len(refused)) || !strings.Contains(msg, "in the future") {
			t.Fatalf("partial success = %v", p)
		}
		at := 0 // the messages follow the order of the export
		for _, i := range refused {
			k := strings.Index(msg, fmt.Sprintf("span %016x", 0xb000+i))
			if k < at {
				t.Fatalf("span of trace %d not rejected in order: %s", i, msg)
			}
			at = k
		}
		for _, i := range stopped {
			k := strings.Index(msg, "run "+trace(i)+" is stopped")
			if k < at {
				t.Fatalf("run of trace %d not stopped in order: %s", i, msg)
			}
			at = k
		}
		var list struct{ Items []runproof.Run }
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs?limit=200", admin, nil)).decode(t, &list)
		if len(list.Items) != traces-len(refused) {
			t.Fatalf("%d runs stored, want %d", len(list.Items), traces-len(refused))
		}
		for i := range traces {
			if slices.Contains(refused, i) {
				continue
			}
			var run runproof.Run
			e.must(200, e.do("GET", "/api/v1/runs/"+trace(i), agent, nil)).decode(t, &run)
			want, steps := runproof.RunCompleted, int64(1)
			if slices.Contains(stopped, i) {
				want = runproof.RunStopped
			}
			if i == 7 {
				steps = long
			}
			if run.Totals.Steps != steps || run.CompletedAt == nil || run.Status != want {
				t.Fatalf("run of trace %d = %+v, want %s with %d steps", i, run, want, steps)
			}
		}
	})
}
