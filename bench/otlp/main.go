// Command otlp measures how many spans per second runproof ingests over
// OTLP/HTTP (protobuf, requests of 500 GenAI spans of one trace, on a real
// loopback server) against the native step API ingesting the same number of
// steps in calls of 500, in the same run and on the same store. Both do the
// whole work: decoding, validation, hashing, policy evaluation, the audit
// event and the transaction; OTLP adds the mapping, the run's creation from
// its first spans and the look-up of re-sent spans.
//
// A step made from a span keeps the span as its content (ids, attributes,
// events), which is larger than the content of the native steps of
// bench/ingest. So the native API is measured twice: with bench/ingest's
// steps, and with steps whose content is, byte for byte, what runproof
// keeps of each span. It prints the three rates and the ratio of OTLP to
// each, for SQLite and, when a PostgreSQL URL is given, PostgreSQL.
//
//	go run ./bench/otlp [-spans 20000] [-batch 500] [-rounds 5] [-traces] [-postgres URL]
//
// With -traces, every span is a trace of its own, as an exporter sends
// many short traces in one request: each becomes a run of one step, which
// its span (the root) ends. The native API is then measured storing the
// same: each run opened, given its step and ended, three calls a run.
//
// -postgres defaults to $RUNPROOF_TEST_POSTGRES_URL; the benchmark works in a
// schema of its own and drops it afterwards.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/runproof/runproof/bench/internal/benchenv"
	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
)

func main() {
	n := flag.Int("spans", 20_000, "spans (and native steps) to ingest per round")
	batch := flag.Int("batch", 500, "spans or steps per request")
	rounds := flag.Int("rounds", 5, "alternating rounds of native and OTLP ingest; the median of each is kept")
	traces := flag.Bool("traces", false, "every span a trace of its own (a run of one step), not one trace of all")
	pgURL := flag.String("postgres", os.Getenv("RUNPROOF_TEST_POSTGRES_URL"), "PostgreSQL URL (default $RUNPROOF_TEST_POSTGRES_URL; empty: SQLite only)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/otlp:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background(), shape{n: *n, batch: *batch, rounds: *rounds, traces: *traces}, *pgURL); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/otlp:", err)
		os.Exit(1)
	}
}

// shape is what each round sends: n spans (or steps), batch to a request,
// in one trace or each in its own (traces).
type shape struct {
	n, batch, rounds int
	traces           bool
}

func run(ctx context.Context, sh shape, pgURL string) error {
	fmt.Println("native/s: native steps as bench/ingest sends them; native=/s: native steps whose content is what is kept",
		"of each span; ratio and ratio=: otlp/s over each")
	fmt.Printf("%-10s %8s %12s %12s %12s %7s %7s\n", "engine", "spans", "native/s", "native=/s", "otlp/s", "ratio", "ratio=")
	st, _, closeSQLite, err := benchenv.SQLite(ctx)
	if err != nil {
		return err
	}
	err = measure(ctx, "sqlite", st, sh)
	closeSQLite()
	if err != nil {
		return err
	}

	if pgURL == "" {
		fmt.Println("postgres   skipped: pass -postgres URL or set RUNPROOF_TEST_POSTGRES_URL")
		return nil
	}
	pst, _, closePostgres, err := benchenv.Postgres(ctx, pgURL)
	if err != nil {
		return err
	}
	defer closePostgres()
	return measure(ctx, "postgres", pst, sh)
}

// The payload of every step: the same words in both APIs.
const (
	prompt   = "Summarise the ticket"
	response = "The customer asks for a refund."
)

func measure(ctx context.Context, engine string, store runproof.Store, sh shape) error {
	n, batch := sh.n, sh.batch
	srv, err := benchenv.NewServer(ctx, store, n)
	if err != nil {
		return err
	}
	defer srv.Close()
	start := time.Now().UTC().Add(-24 * time.Hour)
	small := nativeBodies(start, n, batch, nil)
	sample, err := otlpBodies([]byte("a sample traceID"), start, sh)
	if err != nil {
		return err
	}
	contents := spanContents(sample)
	if len(contents) != n {
		return fmt.Errorf("%d of %d sample spans mapped", len(contents), n)
	}
	same := nativeBodies(start, n, batch, contents)

	post := func(path, contentType string, body []byte) error {
		out, err := srv.Post(ctx, path, contentType, body)
		if err != nil {
			return err
		}
		if contentType == "application/x-protobuf" && len(out) > 0 {
			var r coltracepb.ExportTraceServiceResponse
			if err := proto.Unmarshal(out, &r); err != nil {
				return err
			}
			if r.GetPartialSuccess().GetRejectedSpans() > 0 {
				return fmt.Errorf("%s: %s", path, r.GetPartialSuccess().GetErrorMessage())
			}
		}
		return nil
	}
	sendNative := func(runID string, bodies [][]byte) error {
		if sh.traces {
			return sendRuns(post, runID, start, bodies)
		}
		if err := post("/api/v1/runs", "application/json", []byte(`{"run_id":"`+runID+`","agent_id":"bench","started_at":"`+start.Format(time.RFC3339Nano)+`"}`)); err != nil {
			return err
		}
		for _, b := range bodies {
			if err := post("/api/v1/runs/"+runID+"/steps", "application/json", b); err != nil {
				return err
			}
		}
		return nil
	}
	rate := func(f func() error) (float64, error) {
		t0 := time.Now()
		err := f()
		return float64(n) / time.Since(t0).Seconds(), err
	}
	// Rounds alternate the three so that all see the same machine (these
	// machines are shared and noisy); the median of each is kept.
	var smallRates, sameRates, otlpRates []float64
	for round := range sh.rounds {
		r, err := rate(func() error { return sendNative(fmt.Sprintf("bench-native-%d", round), small) })
		if err != nil {
			return err
		}
		smallRates = append(smallRates, r)
		if r, err = rate(func() error { return sendNative(fmt.Sprintf("bench-same-%d", round), same) }); err != nil {
			return err
		}
		sameRates = append(sameRates, r)

		traceID := make([]byte, 16)
		_, _ = rand.Read(traceID)
		bodies, err := otlpBodies(traceID, start, sh)
		if err != nil {
			return err
		}
		r, err = rate(func() error {
			for _, b := range bodies {
				if err := post("/v1/traces", "application/x-protobuf", b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		otlpRates = append(otlpRates, r)
		if err := checkStored(ctx, store, traceID, sh); err != nil {
			return err
		}
	}
	smallRate, sameRate, otlpRate := benchenv.Median(smallRates), benchenv.Median(sameRates), benchenv.Median(otlpRates)
	fmt.Printf("%-10s %8d %12.0f %12.0f %12.0f %7.2f %7.2f\n", engine, n, smallRate, sameRate, otlpRate, otlpRate/smallRate, otlpRate/sameRate)
	return nil
}

// checkStored checks that a round's spans are stored: n steps of the run
// of traceID, or, with traces, n runs of one step, ended.
func checkStored(ctx context.Context, store runproof.Store, traceID []byte, sh shape) error {
	if !sh.traces {
		stored, err := store.GetRun(ctx, benchenv.Tenant, fmt.Sprintf("%x", traceID))
		if err != nil {
			return err
		}
		if stored.Totals.Steps != int64(sh.n) {
			return fmt.Errorf("%d spans stored, want %d", stored.Totals.Steps, sh.n)
		}
		return nil
	}
	for i := range sh.n {
		stored, err := store.GetRun(ctx, benchenv.Tenant, fmt.Sprintf("%x", traceOf(traceID, i)))
		if err != nil {
			return err
		}
		if stored.Totals.Steps != 1 || stored.CompletedAt == nil {
			return fmt.Errorf("run of span %d: %d steps, ended %v; want 1 step, ended", i, stored.Totals.Steps, stored.CompletedAt != nil)
		}
	}
	return nil
}

// traceOf is the trace id of span i of a round of traces of one span.
func traceOf(traceID []byte, i int) []byte {
	id := bytes.Clone(traceID)
	binary.BigEndian.PutUint32(id[12:], uint32(i))
	return id
}

// sendRuns stores the steps of bodies with the native API as runs of one
// step each, as the spans of one-span traces are: each run opened, given
// its step and ended.
func sendRuns(post func(path, contentType string, body []byte) error, prefix string, start time.Time, bodies [][]byte) error {
	i := 0
	for _, b := range bodies {
		var call struct{ Steps []map[string]any }
		if err := json.Unmarshal(b, &call); err != nil {
			return err
		}
		for _, st := range call.Steps {
			runID := fmt.Sprintf("%s-%d", prefix, i)
			i++
			st["step_index"] = 0
			steps, _ := json.Marshal(map[string]any{"steps": []any{st}})
			for _, c := range []struct{ path, body string }{
				{"/api/v1/runs", `{"run_id":"` + runID + `","agent_id":"bench","started_at":"` + start.Format(time.RFC3339Nano) + `"}`},
				{"/api/v1/runs/" + runID + "/steps", string(steps)},
				{"/api/v1/runs/" + runID + "/complete", `{"status":"completed"}`},
			} {
				if err := post(c.path, "application/json", []byte(c.body)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// spanContents is what runproof keeps of each span of the bodies.
func spanContents(bodies [][]byte) []json.RawMessage {
	var out []json.RawMessage
	for _, b := range bodies {
		req, _ := otlp.DecodeProto(b)
		for _, r := range otlp.Map(req, otlp.Options{Now: time.Now()}).Runs {
			for _, sp := range r.Spans {
				out = append(out, sp.Content)
			}
		}
	}
	return out
}

// nativeBodies are the calls of the native step API, as bench/ingest sends
// them; with contents, step i has content contents[i].
func nativeBodies(start time.Time, n, batch int, contents []json.RawMessage) [][]byte {
	var bodies [][]byte
	for from := 0; from < n; from += batch {
		var steps []map[string]any
		for i := from; i < min(from+batch, n); i++ {
			steps = append(steps, map[string]any{"step_index": i, "timestamp": start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
				"step_type": "chat:gpt-4o", "input_tokens": 120 + i%50, "output_tokens": 40, "cost_cents": 0.25, "duration_ms": 812.5,
				"content": map[string]any{"prompt": prompt, "response": response}})
			if contents != nil {
				steps[len(steps)-1]["content"] = contents[i]
			}
		}
		b, _ := json.Marshal(map[string]any{"steps": steps})
		bodies = append(bodies, b)
	}
	return bodies
}

// otlpBodies are the export requests of an agent instrumented with the
// OpenTelemetry SDK: the same steps as chat spans of one trace, or with
// sh.traces each the root span of a trace of its own.
func otlpBodies(traceID []byte, start time.Time, sh shape) ([][]byte, error) {
	n, batch := sh.n, sh.batch
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(v)}}}
	}
	resource := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "bench"),
		str("telemetry.sdk.language", "go"), str("telemetry.sdk.name", "opentelemetry"), str("telemetry.sdk.version", "1.47.0")}}
	var bodies [][]byte
	for from := 0; from < n; from += batch {
		var spans []*tracepb.Span
		for i := from; i < min(from+batch, n); i++ {
			at := start.Add(time.Duration(i) * time.Millisecond)
			spanID := make([]byte, 8)
			_, _ = rand.Read(spanID)
			tid, parent := traceID, []byte{1, 2, 3, 4, 5, 6, 7, 8}
			if sh.traces {
				tid, parent = traceOf(traceID, i), nil
			}
			spans = append(spans, &tracepb.Span{TraceId: tid, SpanId: spanID, ParentSpanId: parent,
				Name: "chat gpt-4o", Kind: tracepb.Span_SPAN_KIND_CLIENT,
				StartTimeUnixNano: uint64(at.UnixNano()), EndTimeUnixNano: uint64(at.Add(812500 * time.Microsecond).UnixNano()),
				Attributes: []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"), str("gen_ai.request.model", "gpt-4o"),
					num("gen_ai.usage.input_tokens", 120+i%50), num("gen_ai.usage.output_tokens", 40),
					str("gen_ai.prompt", prompt), str("gen_ai.completion", response)}})
		}
		b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			Resource: resource, ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "bench"}, Spans: spans}}}}})
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, b)
	}
	return bodies, nil
}
