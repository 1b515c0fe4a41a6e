package otlp_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/runproof/runproof/internal/otlp"
)

func TestDecodeJSONHexIDs(t *testing.T) {
	body := `{"resource_spans":[{"scopeSpans":[{"spans":[{"traceId":"0AF7651916CD43DD8448EB211C80319C","span_id":"00f067aa0ba902b7",
		"parentSpanId":"","name":"traceId","kind":3,"startTimeUnixNano":"1","endTimeUnixNano":2,"futureField":{"x":[1]},
		"attributes":[{"key":"spanId","value":{"stringValue":"not an id"}}],
		"links":[{"traceId":"1bf7651916cd43dd8448eb211c80319d","spanId":"00000000000000b1"}]}]}]}]}`
	req, err := otlp.DecodeJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	sp := req.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()[0]
	if !bytes.Equal(sp.GetTraceId(), unhex(traceA)) || !bytes.Equal(sp.GetSpanId(), unhex("00f067aa0ba902b7")) ||
		len(sp.GetParentSpanId()) != 0 || sp.GetName() != "traceId" || sp.GetKind() != 3 || sp.GetEndTimeUnixNano() != 2 ||
		sp.GetAttributes()[0].GetValue().GetStringValue() != "not an id" || !bytes.Equal(sp.GetLinks()[0].GetTraceId(), unhex(traceB)) {
		t.Fatalf("span = %v", sp)
	}
	for body, want := range map[string]string{
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"xyz"}]}]}]}`: "not hex",
		`{"resourceSpans":[`:                    "not valid JSON",
		`{"resourceSpans":[]} {}`:               "ExportTraceServiceRequest",
		`{"resourceSpans":"x"}`:                 "ExportTraceServiceRequest",
		"{\"resourceSpans\":[],\"a\":\"\xff\"}": "not valid JSON",
	} {
		if _, err := otlp.DecodeJSON([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", body, err, want)
		}
	}
}

func TestDecodeProto(t *testing.T) {
	req := request(nil, span(traceA, "00000000000000a1", "", 0, 5, kv("gen_ai.operation.name", "chat")))
	b, _ := proto.Marshal(req)
	got, err := otlp.DecodeProto(b)
	if err != nil || !proto.Equal(got, req) {
		t.Fatalf("decoded %v, %v", got, err)
	}
	if _, err := otlp.DecodeProto([]byte{0xff, 0xff}); err == nil {
		t.Fatal("garbage decoded")
	}
}

// FuzzDecodeJSON: whatever the body, decoding fails cleanly or gives a
// request that maps without panicking, and the same request as protobuf
// maps to the same result.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","name":"chat","startTimeUnixNano":"1780000000000000000","endTimeUnixNano":"1780000000500000000","attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"5"}}]}]}]}]}`))
	f.Add([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"runproof.run_id","value":{"stringValue":"r1"}}]},"scopeSpans":[{"spans":[{"traceId":"AA","spanId":""}]}]}]}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","startTimeUnixNano":1,"endTimeUnixNano":"18446744073709551615","attributes":[{"key":"x","value":{"kvlistValue":{"values":[{"key":"y","value":{"doubleValue":"NaN"}}]}}}]}]}]}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := otlp.DecodeJSON(body)
		if err != nil {
			return
		}
		res := otlp.Map(req, otlp.Options{Now: now})
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := otlp.DecodeProto(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		res2 := otlp.Map(again, otlp.Options{Now: now})
		j1, _ := protojson.Marshal(req)
		if len(res.Runs) != len(res2.Runs) || len(res.Rejected) != len(res2.Rejected) {
			t.Fatalf("JSON and protobuf map differently: %s", j1)
		}
		for i, r := range res.Runs {
			for k, s := range r.Spans {
				if !bytes.Equal(s.Content, res2.Runs[i].Spans[k].Content) {
					t.Fatalf("content differs: %s vs %s", s.Content, res2.Runs[i].Spans[k].Content)
				}
			}
		}
	})
}

// TestDecodeLimits: a request of more than MaxSpans spans is refused
// before it is decoded, in either encoding, as is one whose resource,
// copied into each span's content, would store many times the body.
func TestDecodeLimits(t *testing.T) {
	req := func(spans int, serviceName string) *coltracepb.ExportTraceServiceRequest {
		ss := &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: "agent"}}
		for range spans {
			ss.Spans = append(ss.Spans, &tracepb.Span{})
		}
		return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", serviceName)}},
			ScopeSpans: []*tracepb.ScopeSpans{ss}}}}
	}
	decoders := map[string]func(*coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceRequest, error){
		"protobuf": func(r *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceRequest, error) {
			b, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			return otlp.DecodeProto(b)
		},
		"json": func(r *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceRequest, error) {
			b, err := protojson.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			return otlp.DecodeJSON(b)
		},
	}
	for name, decode := range decoders {
		t.Run(name, func(t *testing.T) {
			var tooLarge *otlp.TooLargeError
			if got, err := decode(req(otlp.MaxSpans, "svc")); err != nil || len(got.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()) != otlp.MaxSpans {
				t.Errorf("%d spans: %v", otlp.MaxSpans, err)
			}
			if _, err := decode(req(otlp.MaxSpans+1, "svc")); !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "more than 10000 spans") {
				t.Errorf("%d spans: %v, want too many", otlp.MaxSpans+1, err)
			}
			if _, err := decode(req(100, strings.Repeat("a", 1<<20))); !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "service.* attributes") {
				t.Errorf("a resource of 1 MiB over 100 spans: %v, want too large", err)
			}
		})
	}
	// So does one span of more empty events than a request's messages.
	events := req(1, "svc")
	events.ResourceSpans[0].ScopeSpans[0].Spans[0].Events = make([]*tracepb.Span_Event, 600_000)
	for i := range events.ResourceSpans[0].ScopeSpans[0].Spans[0].Events {
		events.ResourceSpans[0].ScopeSpans[0].Spans[0].Events[i] = &tracepb.Span_Event{}
	}
	for name, decode := range decoders {
		if _, err := decode(events); !strings.Contains(fmt.Sprint(err), "more than 500000 messages") {
			t.Errorf("%s: a span of 600 000 events: %v", name, err)
		}
	}
	// The spans of several resources and scopes count together.
	two := req(otlp.MaxSpans/2, "svc")
	two.ResourceSpans = append(two.ResourceSpans, req(otlp.MaxSpans/2+1, "svc").ResourceSpans...)
	if _, err := decoders["protobuf"](two); !strings.Contains(fmt.Sprint(err), "more than 10000 spans") {
		t.Errorf("spans of two resources: %v", err)
	}
}

// FuzzDecodeProto: a protobuf body decodes as proto.Unmarshal decodes it
// when it holds at most MaxSpans spans (counted on the wire, before
// decoding), and is refused as too large when it holds more.
func FuzzDecodeProto(f *testing.F) {
	one := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", "svc")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{span(traceA, "00000000000000a1", "", 0, 5, kv("gen_ai.usage.input_tokens", 3))}}}}}}
	b, err := proto.Marshal(one)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{0x0a, 0x04, 0x12, 0x02, 0x12, 0x00}) // one empty span
	f.Add([]byte{0x0a, 0x02, 0x13, 0x14})             // a group where scope_spans should be
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := otlp.DecodeProto(body)
		want := &coltracepb.ExportTraceServiceRequest{}
		werr := proto.Unmarshal(body, want)
		n := 0
		for _, rs := range want.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				n += len(ss.GetSpans())
			}
		}
		var tooLarge *otlp.TooLargeError
		switch {
		case werr != nil:
			if err == nil {
				t.Fatalf("decoded a body proto.Unmarshal refuses (%v)", werr)
			}
		case n > otlp.MaxSpans:
			if !errors.As(err, &tooLarge) {
				t.Fatalf("%d spans: %v, want too large", n, err)
			}
		case err != nil:
			if !errors.As(err, &tooLarge) || strings.Contains(err.Error(), "more than 10000 spans") { // only the resource may be too large
				t.Fatalf("%d spans, decoded by proto.Unmarshal: %v", n, err)
			}
		case !proto.Equal(got, want):
			t.Fatal("decoded otherwise than proto.Unmarshal")
		}
	})
}
