package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// A step keeps its span as its content, so that the evidence holds what the
// agent's instrumentation recorded (prompts and answers included, when it
// records them). The content is written by hand, with members in sorted
// order: spans are many, and this is the hot path of OTLP ingest.

// SpanOf reads back the trace and span ids from a step's content written
// by this package; ok is false for content of another shape, or whose ids
// are not those of a span (16 and 8 bytes, in lowercase hex).
func SpanOf(content []byte) (traceID, spanID string, ok bool) {
	var c struct {
		Span struct {
			TraceID string `json:"trace_id"`
			SpanID  string `json:"span_id"`
		} `json:"otel_span"`
	}
	if len(content) == 0 || json.Unmarshal(content, &c) != nil {
		return "", "", false
	}
	return c.Span.TraceID, c.Span.SpanID, isHexID(c.Span.TraceID, 16) && isHexID(c.Span.SpanID, 8)
}

// isHexID reports whether s is an id of n bytes in lowercase hex.
func isHexID(s string, n int) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == n && s == strings.ToLower(s)
}

// contentParts are the parts of a span's content shared by the spans of one
// resource and scope, written once.
type contentParts struct {
	resource []byte // JSON object of the resource's service.* attributes, nil when none
	scope    []byte // {"name": …, "version": …}, nil when the scope is unnamed
}

// appendContent writes a span as a step's content:
//
//	{"otel_span": {"attributes": {…}, "events": [{"attributes", "name", "time"}],
//	  "kind": "client", "links": [{"attributes", "span_id", "trace_id"}], "name": "…",
//	  "parent_span_id": "…", "resource": {…}, "scope": {…}, "span_id": "…",
//	  "status": {"code": "error", "message": "…"}, "trace_id": "…"}}
//
// Ids are lowercase hex, event times RFC 3339 with nanoseconds. Everything
// of the span is kept but its start and end (they are the step's timestamp
// and duration), trace state, flags and dropped counts; of its resource,
// the service.* attributes; empty members are left out.
func appendContent(b []byte, sp *tracepb.Span, s *span, parts contentParts) []byte {
	b = append(b, `{"otel_span":{`...)
	first := true
	member := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	if len(sp.GetAttributes()) > 0 {
		member("attributes")
		b = appendAttributes(b, sp.GetAttributes())
	}
	if len(sp.GetEvents()) > 0 {
		member("events")
		b = append(b, '[')
		for i, e := range sp.GetEvents() {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if len(e.GetAttributes()) > 0 {
				b = append(b, `"attributes":`...)
				b = append(appendAttributes(b, e.GetAttributes()), ',')
			}
			b = append(b, `"name":`...)
			b = append(appendString(b, e.GetName()), `,"time":`...)
			b = append(appendTime(b, e.GetTimeUnixNano()), '}')
		}
		b = append(b, ']')
	}
	member("kind")
	b = appendString(b, kindNames[sp.GetKind()])
	if len(sp.GetLinks()) > 0 {
		member("links")
		b = append(b, '[')
		for i, l := range sp.GetLinks() {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if len(l.GetAttributes()) > 0 {
				b = append(b, `"attributes":`...)
				b = append(appendAttributes(b, l.GetAttributes()), ',')
			}
			b = append(b, `"span_id":`...)
			b = append(appendString(b, hex.EncodeToString(l.GetSpanId())), `,"trace_id":`...)
			b = append(appendString(b, hex.EncodeToString(l.GetTraceId())), '}')
		}
		b = append(b, ']')
	}
	member("name")
	b = appendString(b, sp.GetName())
	if len(sp.GetParentSpanId()) > 0 {
		member("parent_span_id")
		b = appendString(b, hex.EncodeToString(sp.GetParentSpanId()))
	}
	if parts.resource != nil {
		member("resource")
		b = append(b, parts.resource...)
	}
	if parts.scope != nil {
		member("scope")
		b = append(b, parts.scope...)
	}
	member("span_id")
	b = appendString(b, s.SpanID)
	if st := sp.GetStatus(); st.GetCode() != tracepb.Status_STATUS_CODE_UNSET || st.GetMessage() != "" {
		member("status")
		b = append(b, `{"code":`...)
		b = appendString(b, strings.ToLower(strings.TrimPrefix(st.GetCode().String(), "STATUS_CODE_")))
		b = append(b, `,"message":`...)
		b = append(appendString(b, st.GetMessage()), '}')
	}
	member("trace_id")
	b = appendString(b, s.TraceID)
	return append(b, '}', '}')
}

// kindNames are the span kinds as content writes them; an unknown kind is
// "".
var kindNames = map[tracepb.Span_SpanKind]string{
	tracepb.Span_SPAN_KIND_UNSPECIFIED: "unspecified", tracepb.Span_SPAN_KIND_INTERNAL: "internal",
	tracepb.Span_SPAN_KIND_SERVER: "server", tracepb.Span_SPAN_KIND_CLIENT: "client",
	tracepb.Span_SPAN_KIND_PRODUCER: "producer", tracepb.Span_SPAN_KIND_CONSUMER: "consumer",
}

// appendAttributes writes attributes as a JSON object sorted by key; a
// repeated key keeps its last value.
func appendAttributes(b []byte, kvs []*commonpb.KeyValue) []byte {
	if len(kvs) == 0 {
		return b
	}
	order := make([]int, len(kvs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return strings.Compare(kvs[i].GetKey(), kvs[j].GetKey()) })
	b = append(b, '{')
	first := true
	for n, i := range order {
		if n+1 < len(order) && kvs[order[n+1]].GetKey() == kvs[i].GetKey() {
			continue // a later value of the same key wins
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(appendString(b, kvs[i].GetKey()), ':')
		b = appendValue(b, kvs[i].GetValue())
	}
	return append(b, '}')
}

// appendValue writes an attribute value as JSON: integers beyond 2^53 and
// non-finite doubles as strings, so that JSON keeps them exactly; bytes in
// base64; an empty value as null.
func appendValue(b []byte, v *commonpb.AnyValue) []byte {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return appendString(b, x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return strconv.AppendBool(b, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		if x.IntValue > 1<<53 || x.IntValue < -(1<<53) {
			return appendString(b, strconv.FormatInt(x.IntValue, 10))
		}
		return strconv.AppendInt(b, x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return appendString(b, strconv.FormatFloat(x.DoubleValue, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_ArrayValue:
		b = append(b, '[')
		for i, e := range x.ArrayValue.GetValues() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	case *commonpb.AnyValue_KvlistValue:
		if len(x.KvlistValue.GetValues()) == 0 {
			return append(b, '{', '}')
		}
		return appendAttributes(b, x.KvlistValue.GetValues())
	case *commonpb.AnyValue_BytesValue:
		return appendString(b, base64.StdEncoding.EncodeToString(x.BytesValue))
	}
	return append(b, "null"...)
}

// appendScope writes the instrumentation scope, nil when it is unnamed.
func appendScope(b []byte, scope *commonpb.InstrumentationScope) []byte {
	if scope.GetName() == "" && scope.GetVersion() == "" {
		return nil
	}
	b = append(b, `{"name":`...)
	b = append(appendString(b, scope.GetName()), `,"version":`...)
	return append(appendString(b, scope.GetVersion()), '}')
}

// appendString writes a JSON string. Strings of decoded OTLP messages are
// valid UTF-8 (protobuf checks it), so quoting cannot fail.
func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}

func appendTime(b []byte, unixNano uint64) []byte {
	t := time.Unix(0, int64(min(unixNano, math.MaxInt64))).UTC()
	b = append(b, '"')
	return append(t.AppendFormat(b, time.RFC3339Nano), '"')
}
