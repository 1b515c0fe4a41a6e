package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// The OpenAPI 3.1 document is generated from the route table and the Go
// types of each route's bodies, so it cannot drift from the code.

func (s *Server) openapi(w http.ResponseWriter, _ *call) error {
	writeJSON(w, http.StatusOK, s.OpenAPI())
	return nil
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// OpenAPI returns the OpenAPI 3.1 document of the API.
func (s *Server) OpenAPI() map[string]any {
	schemas := map[string]any{
		"Problem": schemaOf(reflect.TypeFor[Problem](), nil),
	}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{"summary": rt.summary, "operationId": operationID(rt)}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.query {
			params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.request), schemas)}}}
		}
		status := rt.status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": http.StatusText(status)}
		if rt.response != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.response), schemas)}}
		}
		problem := map[string]any{"description": "An RFC 9457 problem.", "content": map[string]any{
			"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
		op["responses"] = map[string]any{itoa(status): ok, "default": problem}
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

func operationID(rt route) string {
	p := pathParam.ReplaceAllString(rt.path, "by_$1")
	p = strings.NewReplacer("/api/v1/", "", "/", "_", "-", "_", ".", "_").Replace(p)
	return strings.ToLower(rt.method) + "_" + strings.Trim(p, "_")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// schemaOf describes a Go type as a JSON Schema (2020-12, as OpenAPI 3.1
// uses). Named struct types go to components and are referenced.
func schemaOf(t reflect.Type, components map[string]any) map[string]any {
	if t.Kind() == reflect.Pointer {
		return schemaOf(t.Elem(), components)
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	case t == reflect.TypeFor[json.RawMessage]():
		return map[string]any{}
	case t == reflect.TypeFor[json.Number]():
		return map[string]any{"type": "number"}
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
		name := t.Name()
		if components != nil && name != "" {
			if _, done := components[name]; !done {
				components[name] = map[string]any{} // guards recursion
				components[name] = structSchema(t, components)
			}
			return map[string]any{"$ref": "#/components/schemas/" + name}
		}
		return structSchema(t, components)
	}
	return map[string]any{}
}

func structSchema(t reflect.Type, components map[string]any) map[string]any {
	props := map[string]any{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			for k, v := range structSchema(f.Type, components)["properties"].(map[string]any) {
				props[k] = v
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type, components)
	}
	return map[string]any{"type": "object", "properties": props}
}
