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
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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

// maxMessages bounds the messages one request holds, its spans, their
// attributes, events and links, and theirs, which each take some hundred
// bytes decoded: a 4 MiB body of empty ones, two bytes each, would
// otherwise take hundreds of MB. Ten thousand spans of a dozen attributes
// each hold some 250 000.
const maxMessages = 500_000

// DecodeProto decodes an OTLP/HTTP protobuf body. Its spans and messages
// are counted before it is decoded, so that a body of many tiny ones is
// refused before it takes memory.
func DecodeProto(body []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	var c protoCount
	if err := c.count(body, (&coltracepb.ExportTraceServiceRequest{}).ProtoReflect().Descriptor(), 0); err != nil {
		return nil, fmt.Errorf("the body is not an OTLP protobuf ExportTraceServiceRequest: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("the body is not an OTLP protobuf ExportTraceServiceRequest: %w", err)
	}
	return req, checkShared(req)
}

// protoCount counts the spans and the messages of an encoded request.
type protoCount struct{ spans, messages int }

// check refuses a request of more than MaxSpans spans or maxMessages
// messages.
func (c protoCount) check() error {
	switch {
	case c.spans > MaxSpans:
		return &TooLargeError{Reason: fmt.Sprintf("the request holds more than %d spans", MaxSpans)}
	case c.messages > maxMessages:
		return &TooLargeError{Reason: fmt.Sprintf("the request holds more than %d messages (spans, attributes, events, links…)", maxMessages)}
	}
	return nil
}

func (c protoCount) over() bool { return c.spans > MaxSpans || c.messages > maxMessages }

var spanName = (&tracepb.Span{}).ProtoReflect().Descriptor().FullName()

// maxDepth bounds how deep count walks nested messages; proto.Unmarshal
// refuses those nested deeper than 10 000 anyway.
const maxDepth = 10_100

// count walks the encoded message b of type md, nested depth deep, without
// decoding it, counting the messages it holds at every depth (a field of
// message type is read as one, as proto.Unmarshal reads it), until either
// count is over its bound.
func (c *protoCount) count(b []byte, md protoreflect.MessageDescriptor, depth int) error {
	if depth > maxDepth {
		return errors.New("messages nested too deep")
	}
	for len(b) > 0 && !c.over() {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || fd.Kind() != protoreflect.MessageKind || typ != protowire.BytesType {
			if k = protowire.ConsumeFieldValue(num, typ, b); k < 0 {
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
		c.messages++
		if fd.Message().FullName() == spanName {
			c.spans++
		}
		if err := c.count(v, fd.Message(), depth+1); err != nil {
			return err
		}
	}
	return nil
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
	// Spans and messages are counted as they are read, so that a body of
	// many tiny ones is refused before protojson decodes it: spans are the
	// objects in an array that is the value of a member "spans", messages
	// every object.
	var c protoCount // the body's objects stand for its messages
	spansName := false
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
		case tok.Kind() == '{':
			c.messages++
			if open > 0 && spansArrays[open-1] == depth-1 {
				c.spans++
			}
			if err := c.check(); err != nil {
				return nil, err
			}
		}
		spansName = isName && tok.String() == "spans"
		if err := enc.WriteToken(tok); err != nil {
			return nil, fmt.Errorf("the body is not valid JSON: %w", err)
		}
	}
	return out.Bytes(), nil
}
