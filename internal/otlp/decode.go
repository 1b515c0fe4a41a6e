package otlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json/jsontext"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxSpans is the most spans one export request may hold: OpenTelemetry
// SDKs send 512 at most by default, a Collector's batch processor 8192.
const MaxSpans = 10_000

// maxShared bounds what the resources and scopes of one request add to
// its spans' content, in which each span keeps a copy of them (the
// resource's service.* attributes, the scope's name and version): a large
// resource over many spans would otherwise store many times the body.
const maxShared = 16 << 20

// A TooLargeError is a request that holds more than runproof takes in one:
// too many spans, or a resource too large to copy into each of them. The
// exporter should send smaller batches.
type TooLargeError struct{ Reason string }

func (e *TooLargeError) Error() string {
	return e.Reason + ": export fewer spans per request; OTEL_BSP_MAX_EXPORT_BATCH_SIZE sets the batch span processor's most, " +
		"send_batch_max_size a Collector's"
}

// DecodeProto decodes an OTLP/HTTP protobuf body. Its spans are counted
// before it is decoded, so that a body of many tiny spans is refused
// before it takes memory.
func DecodeProto(body []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	n, err := countProtoSpans(body)
	if err != nil {
		return nil, fmt.Errorf("the body is not an OTLP protobuf ExportTraceServiceRequest: %w", err)
	}
	if n > MaxSpans {
		return nil, tooManySpans()
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("the body is not an OTLP protobuf ExportTraceServiceRequest: %w", err)
	}
	return req, checkShared(req)
}

func tooManySpans() error {
	return &TooLargeError{Reason: fmt.Sprintf("the request holds more than %d spans", MaxSpans)}
}

// countProtoSpans counts the spans of an encoded ExportTraceServiceRequest
// (resource_spans = 1, their scope_spans = 2, their spans = 2) without
// decoding them, up to one past MaxSpans.
func countProtoSpans(b []byte) (int, error) {
	n := 0
	var walk func(b []byte, path ...protowire.Number) error
	walk = func(b []byte, path ...protowire.Number) error {
		for len(b) > 0 {
			num, typ, k := protowire.ConsumeTag(b)
			if k < 0 {
				return protowire.ParseError(k)
			}
			b = b[k:]
			if num != path[0] || typ != protowire.BytesType {
				k = protowire.ConsumeFieldValue(num, typ, b)
				if k < 0 {
					return protowire.ParseError(k)
				}
				b = b[k:]
				continue
			}
			v, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return protowire.ParseError(k)
			}
			b = b[k:]
			if len(path) == 1 {
				if n++; n > MaxSpans {
					return nil
				}
			} else if err := walk(v, path[1:]...); err != nil || n > MaxSpans {
				return err
			}
		}
		return nil
	}
	return n, walk(b, 1, 2, 2)
}

// checkShared refuses a request whose resources and scopes, copied into
// each of their spans' content, would come to more than maxShared bytes.
func checkShared(req *coltracepb.ExportTraceServiceRequest) error {
	total := 0
	for _, rs := range req.GetResourceSpans() {
		res := len(appendAttributes(nil, serviceAttributes(rs.GetResource().GetAttributes())))
		for _, ss := range rs.GetScopeSpans() {
			total += (res + len(appendScope(nil, ss.GetScope()))) * len(ss.GetSpans())
			if total > maxShared {
				return &TooLargeError{Reason: fmt.Sprintf("the request's resource (%d bytes of service.* attributes) and scope, "+
					"which each of its spans keeps in its content, would take more than %d MiB", res, maxShared>>20)}
			}
		}
	}
	return nil
}

// DecodeJSON decodes an OTLP/HTTP JSON body. OTLP JSON is the proto3 JSON
// mapping except that trace and span ids are hex strings, not base64, so
// those members are rewritten before protojson reads the body. Unknown
// fields are ignored, as OTLP asks of receivers.
func DecodeJSON(body []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	b, err := hexIDsToBase64(body)
	if err != nil {
		return nil, err
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, req); err != nil {
		return nil, fmt.Errorf("the body is not an OTLP JSON ExportTraceServiceRequest: %w", err)
	}
	return req, checkShared(req)
}

// idMembers are the members that hold trace and span ids, in both the
// lowerCamelCase names OTLP writes and the proto names protojson accepts.
// In a trace export no user data is ever a member name (attributes are
// {"key": …, "value": …} objects), so these names mean ids wherever they
// appear.
var idMembers = map[string]bool{
	"traceId": true, "spanId": true, "parentSpanId": true,
	"trace_id": true, "span_id": true, "parent_span_id": true,
}

// hexIDsToBase64 copies a JSON text token by token, turning the hex string
// of every id member into the base64 that protojson expects.
func hexIDsToBase64(body []byte) ([]byte, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	var out bytes.Buffer
	out.Grow(len(body))
	enc := jsontext.NewEncoder(&out)
	idValue := false
	// Spans are counted as they are read, so that a body of many tiny
	// spans is refused before protojson decodes it: the objects in an
	// array that is the value of a member "spans".
	spans, spansName := 0, false
	var spansArrays []int // the depths of the open "spans" arrays
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the body is not valid JSON: %w", err)
		}
		isName := false
		if kind, n := dec.StackIndex(dec.StackDepth()); kind == '{' && n%2 == 1 && tok.Kind() == '"' {
			isName = true
		}
		if idValue && tok.Kind() == '"' {
			id, err := hex.DecodeString(tok.String())
			if err != nil {
				return nil, errors.New("the body holds a trace or span id that is not hex")
			}
			tok = jsontext.String(base64.StdEncoding.EncodeToString(id))
		}
		idValue = isName && idMembers[tok.String()]
		switch depth, open := dec.StackDepth(), len(spansArrays); {
		case tok.Kind() == '[' && spansName:
			spansArrays = append(spansArrays, depth)
		case tok.Kind() == ']' && open > 0 && spansArrays[open-1] == depth+1:
			spansArrays = spansArrays[:open-1]
		case tok.Kind() == '{' && open > 0 && spansArrays[open-1] == depth-1:
			if spans++; spans > MaxSpans {
				return nil, tooManySpans()
			}
		}
		spansName = isName && tok.String() == "spans"
		if err := enc.WriteToken(tok); err != nil {
			return nil, fmt.Errorf("the body is not valid JSON: %w", err)
		}
	}
	return out.Bytes(), nil
}
