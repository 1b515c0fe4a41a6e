package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// otlpStart is when the spans of otlpRequest start: the same for every
// request of the test binary, so that span n is the same span in each.
var otlpStart = time.Now().Add(-time.Hour).Truncate(time.Second)

// otlpRequest holds spans of one trace, numbered from..to-1, each starting
// n milliseconds after otlpStart.
func otlpRequest(trace string, from, to int) *coltracepb.ExportTraceServiceRequest {
	tid, _ := hex.DecodeString(trace)
	start := otlpStart
	var spans []*tracepb.Span
	for n := from; n < to; n++ {
		sid, _ := hex.DecodeString(fmt.Sprintf("%016x", n+1))
		at := start.Add(time.Duration(n) * time.Millisecond)
		spans = append(spans, &tracepb.Span{TraceId: tid, SpanId: sid, ParentSpanId: []byte{9, 9, 9, 9, 9, 9, 9, 9}, Name: "chat",
			StartTimeUnixNano: uint64(at.UnixNano()), EndTimeUnixNano: uint64(at.Add(time.Millisecond).UnixNano()),
			Attributes: []*commonpb.KeyValue{{Key: "gen_ai.usage.input_tokens",
				Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(n)}}}}})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}}}
}

// TestIngestSpansConcurrently sends overlapping exports of one run at once,
// through two services over one store (two replicas, each with its own
// memory of span ids): every span is stored once, none is rejected, and the
// indexes have no gap.
func TestIngestSpansConcurrently(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		replicas := []*Service{New(store, Options{}), New(store, Options{})}
		const trace = "0af7651916cd43dd8448eb211c80319c"
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				// Spans 0-39 in every export, then ten of each export's own.
				for _, req := range []*coltracepb.ExportTraceServiceRequest{otlpRequest(trace, 0, 40), otlpRequest(trace, 40+10*i, 50+10*i)} {
					for _, r := range otlp.Map(req, otlp.Options{Now: time.Now()}).Runs {
						res, err := replicas[i%2].IngestSpans(ctx, "acme", r)
						if err == nil && len(res.Rejected) > 0 {
							err = fmt.Errorf("rejected: %v", res.Rejected)
						}
						if err != nil {
							errs <- err
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		steps, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: trace})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for i, st := range steps {
			if st.Index != int64(i) || seen[st.InputTokens] {
				t.Fatalf("step %d: index %d, span %d (seen before: %v)", i, st.Index, st.InputTokens, seen[st.InputTokens])
			}
			seen[st.InputTokens] = true
		}
		if len(steps) != 120 {
			t.Fatalf("%d steps, want 120", len(steps))
		}
	})
}

// TestIngestManySpans stores more spans of a run than one append takes.
func TestIngestManySpans(t *testing.T) {
	store := storetest.OpenSQLite(t)
	svc := New(store, Options{})
	const trace = "1bf7651916cd43dd8448eb211c80319d"
	runs := otlp.Map(otlpRequest(trace, 0, 2*MaxStepsPerCall+500), otlp.Options{Now: time.Now()}).Runs
	res, err := svc.IngestSpans(context.Background(), "acme", runs[0])
	if err != nil || len(res.Rejected) > 0 || len(res.Steps) != 2*MaxStepsPerCall+500 {
		t.Fatalf("result %d steps, rejected %v, error %v", len(res.Steps), res.Rejected, err)
	}
	again, err := svc.IngestSpans(context.Background(), "acme", runs[0])
	if err != nil || len(again.Steps) != 0 || again.Resent != 2*MaxStepsPerCall+500 {
		t.Fatalf("re-send: %d steps, %d re-sent, error %v", len(again.Steps), again.Resent, err)
	}
	run, err := store.GetRun(context.Background(), "acme", trace)
	if err != nil || run.Totals.Steps != 2*MaxStepsPerCall+500 {
		t.Fatalf("run %+v, %v", run, err)
	}
	// Another replica, which has seen none of the spans, reads them back
	// from the store a page at a time.
	pages := &stepPages{Store: store}
	replica := New(pages, Options{})
	replica.spans.page = 1000
	again, err = replica.IngestSpans(context.Background(), "acme", runs[0])
	if err != nil || len(again.Steps) != 0 || again.Resent != 2*MaxStepsPerCall+500 {
		t.Fatalf("re-send to another replica: %d steps, %d re-sent, error %v", len(again.Steps), again.Resent, err)
	}
	// Three pages of the span index, and no read without a limit.
	if slices.Contains(pages.limits, 0) || len(pages.limits) < 3 || !slices.Equal(pages.limits[:3], []int{1000, 1000, 1000}) {
		t.Errorf("steps read with limits %v, want three pages of 1000, then none unbounded", pages.limits)
	}
}

// TestIngestRunsFailing: runs of one export are stored several at a time;
// when the store fails on one, the error names its run, and the export
// sent again stores what is missing and recognises what was stored.
func TestIngestRunsFailing(t *testing.T) {
	store := &failingRun{Store: storetest.OpenSQLite(t), runID: fmt.Sprintf("%032x", 0xc000+13)}
	svc := New(store, Options{})
	req := &coltracepb.ExportTraceServiceRequest{}
	for i := range 40 {
		req.ResourceSpans = append(req.ResourceSpans, otlpRequest(fmt.Sprintf("%032x", 0xc000+i), i, i+1).ResourceSpans...)
	}
	runs := otlp.Map(req, otlp.Options{Now: time.Now()}).Runs
	ctx := context.Background()
	if _, err := svc.IngestRuns(ctx, "acme", runs); err == nil || !strings.Contains(err.Error(), "run "+store.runID+": ") {
		t.Fatalf("error %v, want one naming run %s", err, store.runID)
	}
	// An export whose time ran out stores nothing more, and says so.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := svc.IngestRuns(done, "acme", runs); !errors.Is(err, context.Canceled) {
		t.Fatalf("with its context done: error %v, want one that says so", err)
	}
	store.runID = ""
	res, err := svc.IngestRuns(ctx, "acme", runs)
	if err != nil || len(res) != len(runs) {
		t.Fatalf("%d results, error %v", len(res), err)
	}
	resent := 0
	for i, r := range res {
		if r.RunID != runs[i].ID || len(r.Steps)+r.Resent != 1 {
			t.Fatalf("result %d: %+v, want run %s's one span stored or re-sent", i, r, runs[i].ID)
		}
		resent += r.Resent
		if run, err := store.GetRun(ctx, "acme", r.RunID); err != nil || run.Totals.Steps != 1 {
			t.Fatalf("run %s: %d steps, %v", r.RunID, run.Totals.Steps, err)
		}
	}
	// Run 13 started once a run before it was stored (runsAtOnce at a
	// time): sent again, that one is recognised.
	if resent == 0 {
		t.Errorf("no span recognised as re-sent, want those stored before the failure")
	}
}

// failingRun is a store whose updates of one run fail.
type failingRun struct {
	runproof.Store
	runID string
}

func (s *failingRun) UpdateRun(ctx context.Context, p runproof.UpdateRunParams, fn func(runproof.RunState) (runproof.RunChange, error)) error {
	if p.RunID == s.runID {
		return errors.New("disk I/O error")
	}
	return s.Store.UpdateRun(ctx, p, fn)
}

// stepPages is a store that notes the limit of each ListSteps.
type stepPages struct {
	runproof.Store
	limits []int
}

func (s *stepPages) ListSteps(ctx context.Context, p runproof.ListStepsParams) ([]runproof.Step, error) {
	s.limits = append(s.limits, p.Limit)
	return s.Store.ListSteps(ctx, p)
}

// FuzzMappedSpansAreValidSteps: any span the mapping accepts passes the
// validation of the native step API, so that an export is never refused
// whole for one span.
func FuzzMappedSpansAreValidSteps(f *testing.F) {
	seed, _ := proto.Marshal(otlpRequest("0af7651916cd43dd8448eb211c80319c", 0, 3))
	f.Add(seed)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := otlp.DecodeProto(body)
		if err != nil {
			return
		}
		now := time.Now()
		for _, r := range otlp.Map(req, otlp.Options{Now: now}).Runs {
			if len(r.Spans) > MaxStepsPerCall {
				continue
			}
			if _, err := ValidateSteps(spanInputs(r.Spans, 0), runproof.Timestamp(now)); err != nil {
				t.Fatalf("mapped spans refused: %v", err)
			}
		}
	})
}

// TestRootSpanBeforeStart: a run opened through the native API, whose root
// span ends before the run's start (the agent's clock behind the server's),
// is ended by that span, at its start.
func TestRootSpanBeforeStart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		const trace = "1af7651916cd43dd8448eb211c80319c"
		run, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: trace, AgentID: "bot"})
		if err != nil {
			t.Fatal(err)
		}
		req := otlpRequest(trace, 0, 1)
		root := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
		root.ParentSpanId = nil
		root.StartTimeUnixNano = uint64(run.StartedAt.Add(-3 * time.Second).UnixNano())
		root.EndTimeUnixNano = uint64(run.StartedAt.Add(-time.Second).UnixNano())
		for _, r := range otlp.Map(req, otlp.Options{Now: time.Now()}).Runs {
			if res, err := svc.IngestSpans(ctx, "acme", r); err != nil || len(res.Rejected) != 0 || len(res.Steps) != 1 {
				t.Fatalf("result %+v, error %v", res, err)
			}
		}
		got, err := svc.GetRun(ctx, "acme", trace)
		if err != nil || got.Status != runproof.RunCompleted || got.CompletedAt == nil || !got.CompletedAt.Equal(run.StartedAt) {
			t.Errorf("run %+v, %v: want completed at its start %s", got, err, run.StartedAt)
		}
	})
}

// TestStepLongBeforeRun: a step dated more than MaxStepBeforeRun before its
// run started is refused, naming its timestamp; through OTLP, such a span
// is rejected alone and the others are stored.
func TestStepLongBeforeRun(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	const trace = "2af7651916cd43dd8448eb211c80319c"
	run, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: trace, AgentID: "bot"})
	if err != nil {
		t.Fatal(err)
	}
	step := func(at time.Time) []runproof.Step {
		t.Helper()
		idx := int64(0)
		steps, err := ValidateSteps([]StepInput{{StepIndex: &idx, Timestamp: at.Format(time.RFC3339Nano), StepType: "llm"}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return steps
	}
	_, err = svc.AppendSteps(ctx, "acme", trace, step(run.StartedAt.Add(-MaxStepBeforeRun-time.Second)))
	if f := runproof.ErrorFields(err); len(f) != 1 || f[0].Field != "steps[0].timestamp" {
		t.Errorf("a step a day and a second before its run: %v", err)
	}

	req := otlpRequest(trace, 0, 2)
	early := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
	early.StartTimeUnixNano = uint64(run.StartedAt.Add(-MaxStepBeforeRun - time.Minute).UnixNano())
	early.EndTimeUnixNano = early.StartTimeUnixNano + uint64(time.Millisecond)
	for _, r := range otlp.Map(req, otlp.Options{Now: time.Now()}).Runs {
		res, err := svc.IngestSpans(ctx, "acme", r)
		if err != nil || len(res.Steps) != 1 || len(res.Rejected) != 1 || res.Rejected[0].SpanID != hex.EncodeToString(early.SpanId) ||
			strings.Count(res.Rejected[0].String(), res.Rejected[0].SpanID) != 1 {
			t.Errorf("result %+v, error %v: want the early span rejected, the other stored", res, err)
		}
	}
}

// TestSpansOfOneExportOneTime: the spans of one export, stored in several
// appends, are recorded at one time, the stop's too, so that those after
// the stopping span are told as sent with it, not after the agent was told.
func TestSpansOfOneExportOneTime(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "token cap", Type: runproof.PolicyTokenLimit,
			Threshold: "1000", Action: runproof.ActionStop}); err != nil {
			t.Fatal(err)
		}
		const trace = "2cf7651916cd43dd8448eb211c80319e"
		runs := otlp.Map(otlpRequest(trace, 0, 2*MaxStepsPerCall+500), otlp.Options{Now: time.Now()}).Runs
		if _, err := svc.IngestSpans(ctx, "acme", runs[0]); err != nil {
			t.Fatal(err)
		}
		run, err := store.GetRun(ctx, "acme", trace)
		if err != nil || run.StoppedAt == nil {
			t.Fatalf("run %+v, %v: want it stopped", run, err)
		}
		steps, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: trace})
		if err != nil || len(steps) != 2*MaxStepsPerCall+500 {
			t.Fatalf("%d steps, %v", len(steps), err)
		}
		for _, st := range steps {
			if !st.RecordedAt.Equal(*run.StoppedAt) {
				t.Fatalf("step %d recorded at %s, the stop at %s: one export, one time", st.Index, st.RecordedAt, run.StoppedAt)
			}
		}
	})
}

// TestSpanUnderWayAtStop: the agent's root span, begun before the span that
// broke a stop policy, comes after the stop (it ends last): it was under
// way, so it is judged without an after_stop finding, while a span begun
// after the breaking one is a violation for going on.
func TestSpanUnderWayAtStop(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "no shell", Type: runproof.PolicyStepTypeDenied,
			StepTypes: []string{"execute_tool:shell"}, Action: runproof.ActionStop}); err != nil {
			t.Fatal(err)
		}
		const trace = "4af7651916cd43dd8448eb211c80319d"
		send := func(spans ...*tracepb.Span) SpansResult {
			t.Helper()
			req := otlpRequest(trace, 0, 0)
			req.ResourceSpans[0].ScopeSpans[0].Spans = spans
			runs := otlp.Map(req, otlp.Options{Now: time.Now()}).Runs
			if len(runs) != 1 {
				t.Fatalf("%d runs", len(runs))
			}
			res, err := svc.IngestSpans(ctx, "acme", runs[0])
			if err != nil || len(res.Rejected) != 0 {
				t.Fatalf("result %+v, error %v", res, err)
			}
			return res
		}
		span := func(id, parent byte, op string, from, to int) *tracepb.Span {
			tid, _ := hex.DecodeString(trace)
			s := &tracepb.Span{TraceId: tid, SpanId: []byte{0, 0, 0, 0, 0, 0, 0, id}, Name: op,
				StartTimeUnixNano: uint64(otlpStart.Add(time.Duration(from) * time.Second).UnixNano()),
				EndTimeUnixNano:   uint64(otlpStart.Add(time.Duration(to) * time.Second).UnixNano()),
				Attributes:        []*commonpb.KeyValue{{Key: "gen_ai.operation.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: op}}}}}
			if parent != 0 {
				s.ParentSpanId = []byte{0, 0, 0, 0, 0, 0, 0, parent}
			}
			return s
		}
		shell := span(3, 1, "execute_tool", 2, 3)
		shell.Attributes = append(shell.Attributes, &commonpb.KeyValue{Key: "gen_ai.tool.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "shell"}}})
		if res := send(span(2, 1, "chat", 1, 2), shell); res.Decision != AgentStop {
			t.Fatalf("the shell call: decision %s, want stop", res.Decision)
		}
		// After the stop: the root and a sub-agent's span begun with the
		// breaking one (to the millisecond, as OpenTelemetry JS gives
		// starts) were under way; a chat begun after it, and one dated
		// before it but over by then, show the agent going on.
		send(span(4, 1, "chat", 4, 5), span(1, 0, "invoke_agent", 0, 6), span(5, 1, "invoke_agent", 2, 4), span(6, 1, "chat", 1, 1))
		steps, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: trace, Limit: 10})
		if err != nil || len(steps) != 6 {
			t.Fatalf("%d steps, %v", len(steps), err)
		}
		wentOn := map[string]bool{"0000000000000001": false, "0000000000000005": false, "0000000000000004": true, "0000000000000006": true}
		for _, s := range steps[2:] {
			_, id, _ := otlp.SpanOf(s.Content)
			afterStop := slices.ContainsFunc(s.Findings, func(f runproof.Finding) bool { return f.Outcome == runproof.OutcomeAfterStop })
			if want, ok := wentOn[id]; !ok || afterStop != want || (s.Status == runproof.StepViolation) != want || s.IsInflection {
				t.Errorf("span %s (%s), step %d: status %s, after_stop %v; want after_stop %v", id, s.StepType, s.Index, s.Status, afterStop, want)
			}
		}
		// The run opened by the spans that stopped it starts its story.
		if events, err := svc.SystemEvents(ctx, "acme", trace, false); err != nil || len(events.Events) == 0 || events.Events[0].Kind != EventRunStarted {
			t.Errorf("system events %+v, %v: want run.started first", events.Events, err)
		}
	})
}
