// Package otlp maps OpenTelemetry trace exports (OTLP, with the GenAI
// semantic conventions, gen_ai.*) onto runproof runs and steps: a trace is a
// run, a span is a step. It decodes OTLP/HTTP bodies and turns one export
// request into the steps of each run it touches, plus the spans it rejects
// and why. docs/otel.md describes the mapping for users.
//
// It is pure: it never performs I/O, never looks at what is stored and knows
// nothing of HTTP. Step indexes, re-sends and policy evaluation are left to
// the caller, which goes through package service like every other ingest.
package otlp
