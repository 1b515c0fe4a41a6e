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
	"google.golang.org/protobuf/proto"
)

// DecodeProto decodes an OTLP/HTTP protobuf body.
func DecodeProto(body []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("the body is not an OTLP protobuf ExportTraceServiceRequest: %w", err)
	}
	return req, nil
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
	return req, nil
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
		if err := enc.WriteToken(tok); err != nil {
			return nil, fmt.Errorf("the body is not valid JSON: %w", err)
		}
	}
	return out.Bytes(), nil
}
