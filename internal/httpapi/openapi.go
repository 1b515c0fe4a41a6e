package httpapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// The OpenAPI 3.1 document is generated from the route table and the Go
// types of each route's bodies. TestOpenAPIDescribesResponses checks real
// answers of a server against it, member by member, so that it stays true.

func (s *Server) openapi(w http.ResponseWriter, _ *call) error {
	return writeJSON(w, http.StatusOK, s.OpenAPI())
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// querySchema describes a query parameter by what its name means on most
// routes (a route says otherwise in its querySchemas); maxLimit bounds
// limit.
func querySchema(name string, maxLimit int) map[string]any {
	switch name {
	case "limit":
		return map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit}
	case "offset", "from_index":
		return map[string]any{"type": "integer", "minimum": 0}
	case "from", "to", "detected_before":
		return map[string]any{"type": "string", "format": "date-time"}
	case "status":
		return map[string]any{"type": "string", "enum": runproof.RunStatuses}
	}
	return map[string]any{"type": "string"}
}

// OpenAPI returns the OpenAPI 3.1 document of the API.
func (s *Server) OpenAPI() map[string]any {
	schemas := map[string]any{}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{"summary": rt.summary, "operationId": operationID(rt)}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.query {
			schema, ok := rt.querySchemas[q]
			if !ok {
				schema = querySchema(q, rt.limitMax())
			}
			params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": schema})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.request != nil {
			t := reflect.TypeOf(rt.request)
			schema := schemaOf(t, schemas)
			if !openRequests[t] {
				closeObjects(schema, schemas)
			}
			op["requestBody"] = map[string]any{"required": !rt.bodyOptional, "content": map[string]any{
				"application/json": map[string]any{"schema": schema}}}
		}
		status := rt.status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": http.StatusText(status)}
		if rt.response != nil {
			var schema map[string]any
			if rt.evidence {
				schema = withEvidence(reflect.TypeOf(rt.response), schemas)
			} else {
				schema = schemaOf(reflect.TypeOf(rt.response), schemas)
			}
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": schema}}
		}
		if len(rt.media) > 0 {
			content := map[string]any{}
			for _, m := range rt.media {
				content[m] = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
			}
			ok["content"] = content
		}
		problem := map[string]any{"description": "An RFC 9457 problem.", "content": map[string]any{
			"application/problem+json": map[string]any{"schema": schemaOf(reflect.TypeFor[Problem](), schemas)}}}
		responses := map[string]any{strconv.Itoa(status): ok, "default": problem}
		if rt.repeatStatus != 0 {
			repeat := map[string]any{"description": http.StatusText(rt.repeatStatus) + ": an identical re-send, which changed nothing."}
			if content := ok["content"]; content != nil {
				repeat["content"] = content
			}
			responses[strconv.Itoa(rt.repeatStatus)] = repeat
		}
		if rt.async {
			accepted := map[string]any{"description": http.StatusText(http.StatusAccepted) +
				": asked with `Prefer: respond-async`, the record as it stands when the work starts; its Location tells when it is done."}
			if content := ok["content"]; content != nil {
				accepted["content"] = content
			}
			responses[strconv.Itoa(http.StatusAccepted)] = accepted
		}
		if rt.otlp {
			otlpEncodings(op, responses, problem)
		}
		op["responses"] = responses
		if rt.perm != "" {
			op["security"] = []any{map[string]any{"apiKey": []any{}}}
			op["description"] = "Needs the " + string(rt.perm) + " permission."
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "runproof", "version": "1",
			"description": "Black-box recorder and guard for AI agents. Errors are RFC 9457 problem+json."},
		"paths": paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"apiKey": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

// otlpEncodings documents what OTLP/HTTP adds to an operation: bodies
// and answers in protobuf as well as JSON, and errors of the request (400
// for its query or body, 413, 415, 503) as a google.rpc.Status in the
// request's encoding. Those of the API key (401, 403) are problems, as on
// every route; so is a 503 of a database that did not answer the key's
// lookup in time.
func otlpEncodings(op, responses, problem map[string]any) {
	protobuf := map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": "application/x-protobuf"}}
	op["requestBody"].(map[string]any)["content"].(map[string]any)["application/x-protobuf"] = protobuf
	responses["200"].(map[string]any)["content"].(map[string]any)["application/x-protobuf"] = protobuf
	status := map[string]any{"description": "A google.rpc.Status, in the request's encoding (OTLP/HTTP).", "content": map[string]any{
		"application/json": map[string]any{"schema": map[string]any{"type": "object", "properties": map[string]any{
			"code": map[string]any{"type": "integer"}, "message": map[string]any{"type": "string"},
			"details": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}}}},
		"application/x-protobuf": protobuf}}
	responses["default"], responses["401"], responses["403"] = status, problem, problem
	delete(responses, "422")
}

func operationID(rt route) string {
	p := pathParam.ReplaceAllString(rt.path, "by_$1")
	p = strings.NewReplacer("/api/v1/", "", "/", "_", "-", "_", ".", "_").Replace(p)
	return strings.ToLower(rt.method) + "_" + strings.Trim(p, "_")
}

// openRequests are the request bodies whose unknown members are ignored:
// OTLP's, as its specification asks. Every other body's are refused (422).
var openRequests = map[reflect.Type]bool{reflect.TypeFor[otlpTracesDoc](): true}

// closeObjects says of every object schema s holds, components it refers
// to included, that it has no other members than its properties.
func closeObjects(s map[string]any, components map[string]any) {
	if ref, ok := s["$ref"].(string); ok {
		c := components[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		if c["additionalProperties"] == nil {
			c["additionalProperties"] = false
			closeObjects(c, components)
		}
		return
	}
	if props, ok := s["properties"].(map[string]any); ok {
		s["additionalProperties"] = false
		for _, p := range props {
			closeObjects(p.(map[string]any), components)
		}
	}
	for _, key := range []string{"items", "anyOf"} {
		switch v := s[key].(type) {
		case map[string]any:
			closeObjects(v, components)
		case []any:
			for _, x := range v {
				closeObjects(x.(map[string]any), components)
			}
		}
	}
}

// fixedSchemas describe the types whose JSON is not what their kind says.
var fixedSchemas = map[reflect.Type]map[string]any{
	reflect.TypeFor[time.Time]():         {"type": "string", "format": "date-time"},
	reflect.TypeFor[json.RawMessage]():   {}, // any JSON value
	reflect.TypeFor[jsontext.Value]():    {},
	reflect.TypeFor[json.Number]():       {"type": "number"},
	reflect.TypeFor[service.Number]():    {"type": "number"},                             // a JSON number, kept as written
	reflect.TypeFor[service.Threshold](): {"type": []string{"number", "string", "null"}}, // a number, or a string holding one
}

// addedMembers lists the members a type's MarshalJSON adds to its fields.
var addedMembers = map[reflect.Type]map[string]any{
	reflect.TypeFor[runproof.Totals](): {"tokens": map[string]any{"type": "integer"},
		"cost_cents": map[string]any{"type": "number"}, "duration_ms": map[string]any{"type": "number"}},
	reflect.TypeFor[runproof.Step](): {"tokens": map[string]any{"type": "integer"},
		"cost_cents": map[string]any{"type": "number"}, "duration_ms": map[string]any{"type": "number"}},
}

// schemaOf describes a Go type as a JSON Schema (2020-12, as OpenAPI 3.1
// uses). Named struct types go to components, named after their package
// and type ("runproof.Run"), and are referenced.
func schemaOf(t reflect.Type, components map[string]any) map[string]any {
	if t.Kind() == reflect.Pointer {
		return schemaOf(t.Elem(), components)
	}
	if s, ok := fixedSchemas[t]; ok {
		return s
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), components)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), components)}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if components == nil || t.Name() == "" {
			return structSchema(t, components)
		}
		name := path.Base(t.PkgPath()) + "." + t.Name()
		if _, done := components[name]; !done {
			components[name] = map[string]any{} // guards recursion
			components[name] = structSchema(t, components)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

// withEvidence describes a struct answered by writeEvidence: its members
// and the evidence metadata.
func withEvidence(t reflect.Type, components map[string]any) map[string]any {
	s := structSchema(t, components)
	s["properties"].(map[string]any)["evidence"] = schemaOf(reflect.TypeFor[runproof.EvidenceMeta](), components)
	s["required"] = []any{"evidence"}
	return s
}

func structSchema(t reflect.Type, components map[string]any) map[string]any {
	props := map[string]any{}
	var required []any
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			sub := structSchema(f.Type, components)
			for k, v := range sub["properties"].(map[string]any) {
				props[k] = v
			}
			if r, ok := sub["required"].([]any); ok {
				required = append(required, r...)
			}
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := schemaOf(f.Type, components)
		req, enum := docTag(f.Tag.Get("openapi"))
		if enum != nil {
			s = with(s, "enum", enum)
		}
		if f.Type.Kind() == reflect.Pointer && !strings.Contains(opts, "omitempty") && !req {
			s = nullable(s) // a nil pointer is written as null
		}
		if req {
			required = append(required, name)
		}
		props[name] = s
	}
	for k, v := range addedMembers[t] {
		props[k] = v
	}
	if required != nil {
		return map[string]any{"type": "object", "properties": props, "required": required}
	}
	return map[string]any{"type": "object", "properties": props}
}

// docTag reads a field's `openapi` tag, which says what validation
// enforces of a request's member: "required", and "enum=a|b|c" for the
// only values it takes.
func docTag(tag string) (required bool, enum []any) {
	for part := range strings.SplitSeq(tag, ",") {
		switch v, isEnum := strings.CutPrefix(part, "enum="); {
		case part == "required":
			required = true
		case isEnum:
			for e := range strings.SplitSeq(v, "|") {
				enum = append(enum, e)
			}
		}
	}
	return required, enum
}

// with is a copy of s with the keyword key set to v.
func with(s map[string]any, key string, v any) map[string]any {
	n := maps.Clone(s)
	n[key] = v
	return n
}

// nullable is s, or null.
func nullable(s map[string]any) map[string]any {
	switch typ := s["type"].(type) {
	case string:
		return with(s, "type", []any{typ, "null"})
	case nil:
		if len(s) == 0 {
			return s // any value, null included
		}
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}
