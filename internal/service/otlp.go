package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/sync/errgroup"

	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
)

// SpansResult is what became of the spans of one run in one OTLP export.
type SpansResult struct {
	RunID      string
	Status     runproof.RunStatus // the run's status afterwards
	Decision   string             // stop once the run is stopped
	IncidentID string
	Steps      []StepOutcome   // the steps stored by this export
	Resent     int             // spans already stored with the same content
	Rejected   []otlp.Rejected // spans not stored, and why
}

// runsAtOnce is how many runs of one OTLP export are stored at once.
// Their spans are apart, so their transactions need not wait for each
// other: on PostgreSQL they commit together, where one after another an
// export of thousands of one-span traces outlasted its request.
const runsAtOnce = 8

// IngestRuns stores the runs of one OTLP export (package otlp maps them),
// each as IngestSpans does, runsAtOnce at a time, and returns their results
// in the order of runs, those of the runs stored. The error is the store
// failing, or ctx ending before every run was stored: the export should be
// retried, and the spans stored by then are recognised as re-sent.
func (s *Service) IngestRuns(ctx context.Context, tenantID string, runs []otlp.Run) ([]SpansResult, error) {
	out := make([]SpansResult, len(runs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runsAtOnce)
	started := 0
	for i, r := range runs {
		if gctx.Err() != nil { // a run failed, or ctx ended: start no more
			break
		}
		started++
		g.Go(func() error {
			res, err := s.IngestSpans(gctx, tenantID, r)
			if err != nil {
				return fmt.Errorf("run %s: %w", r.ID, err)
			}
			out[i] = res
			return nil
		})
	}
	err := g.Wait()
	if err == nil && started < len(runs) { // none failed: ctx ended first
		err = fmt.Errorf("%d of %d runs not stored: %w", len(runs)-started, len(runs), context.Cause(ctx))
	}
	return out, err
}

// spanAttempts bounds the retries of an export that races an export of the
// same run in another process for the next step indexes.
const spanAttempts = 10

// IngestSpans stores the spans of one run of an OTLP export (package otlp
// maps them) as steps, with the rules of the native step API:
//
//   - an unknown run is created (CreateRun) with the spans' agent, goal,
//     trace id and earliest start, when some of its spans would be stored:
//     spans that would all be refused open no run;
//   - a span already stored (same trace id and span id) is a no-op when its
//     content is the same and rejected otherwise;
//   - new spans take the next step indexes, in the order given (start time,
//     then as sent), and are judged by AppendSteps: after a stop they are
//     stored as violations;
//   - a run that ended (completed, failed, cancelled, or stopped and then
//     ended by its agent) takes no new spans, but for those that ended by
//     its end, arriving within LateGrace of it (refusedLate): the others are
//     rejected;
//   - the root span of a run named by its trace id ends the run, as failed
//     when its status is ERROR.
//
// Problems with the spans are reported in the result; the error is for the
// store failing, when the export should be retried.
func (s *Service) IngestSpans(ctx context.Context, tenantID string, r otlp.Run) (SpansResult, error) {
	// Exports of one run are taken one at a time under its entry's lock. A
	// race for the next indexes, with another process or with an export
	// holding the entry of an index since reset, is retried.
	e := s.spans.entry(tenantID, r.ID)
	e.mu.Lock()
	defer e.mu.Unlock()
	for attempt := 1; ; attempt++ {
		res, raced, err := s.ingestSpansOnce(ctx, tenantID, r, e)
		if err != nil || !raced {
			return res, err
		}
		if attempt == spanAttempts {
			return SpansResult{}, fmt.Errorf("ingest spans of run %s: other exports of the run kept taking the next indexes", r.ID)
		}
		select {
		case <-ctx.Done():
			return SpansResult{}, ctx.Err()
		case <-time.After(time.Duration(rand.IntN(10*attempt)+1) * time.Millisecond):
		}
	}
}

// ingestSpansOnce makes one attempt; raced is true when another export of
// the run took the indexes this one meant to use. It opens the run, sets
// apart the spans stored before (re-sent), appends the others in order,
// and ends the run when its root span is stored.
func (s *Service) ingestSpansOnce(ctx context.Context, tenantID string, r otlp.Run, e *runSpans) (SpansResult, bool, error) {
	now := s.Now()
	a := &spanAttempt{res: SpansResult{RunID: r.ID, Decision: AgentAllow}, kept: map[string]bool{}}
	if bound := boundAgent(ctx); bound != "" {
		// The key's agent is the spans' agent, as the run's agent_id is for
		// the native API, but for spans whose resource names another: a
		// program sending with another agent's key. A span naming another
		// agent is a sub-agent's, within the run.
		r.Spans = slices.DeleteFunc(slices.Clone(r.Spans), func(sp otlp.Span) bool {
			foreign := sp.ResourceAgent != "" && sp.ResourceAgent != bound
			if foreign {
				a.reject([]otlp.Span{sp}, fmt.Sprintf("this key is bound to agent %q: it sends that agent's spans only, "+
					"and the resource of this span names agent %q (gen_ai.agent.name or gen_ai.agent.id): send it with that agent's key", bound, sp.ResourceAgent))
			}
			return foreign
		})
		if len(r.Spans) == 0 {
			return a.res, false, nil
		}
		r.AgentID = bound
	}
	run, err := s.store.GetRun(ctx, tenantID, r.ID)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		// A run is opened for spans only when some of them would be stored.
		if refused := refusedAll(r.Spans, now); refused != nil {
			a.res.Rejected = refused
			return a.res, false, nil
		}
		run, err = s.openSpanRun(ctx, tenantID, r)
		// Its steps are recorded after it, as a run's life is told.
		if err == nil && run.CreatedAt.After(now) {
			now = run.CreatedAt
		}
	}
	if code := runproof.ErrorCode(err); code == runproof.EINVALID {
		a.reject(r.Spans, runproof.ErrorMessage(err))
		return a.res, false, nil
	} else if err != nil {
		return a.res, false, err
	}
	if ownRun(ctx, run) != nil { // found, or made meanwhile, for another agent
		a.reject(r.Spans, fmt.Sprintf("the run of trace %s is another agent's: this key sends its own agent's spans only", r.TraceID))
		return a.res, false, nil
	}
	stored, err := s.storedSpans(ctx, tenantID, run, r.Spans, e)
	if err != nil {
		return a.res, false, err
	}
	fresh := a.setResentApart(r.Spans, stored, now)
	if run.CompletedAt != nil {
		fresh = slices.DeleteFunc(fresh, func(sp otlp.Span) bool {
			why := refusedLate(run, sp.Timestamp, sp.DurationMicros, now, "spans")
			if why != "" {
				a.reject([]otlp.Span{sp}, why)
			}
			return why != ""
		})
	}
	cur, raced, err := s.appendSpans(ctx, tenantID, run, fresh, e, a, now)
	if raced || err != nil {
		return a.res, raced, err
	}
	if r.End != nil && a.kept[r.End.SpanID] {
		if cur, err = s.endSpanRun(ctx, tenantID, cur, r.End); err != nil {
			return a.res, false, err
		}
	}
	a.res.Status, a.res.IncidentID = cur.Status, cur.IncidentID
	if cur.Status == runproof.RunStopped {
		a.res.Decision = AgentStop
	}
	return a.res, false, nil
}

// spanAttempt is what one attempt at a run's spans answers, and the ids of
// the spans the run holds, stored now or before.
type spanAttempt struct {
	res  SpansResult
	kept map[string]bool
}

func (a *spanAttempt) reject(spans []otlp.Span, reason string) {
	for _, sp := range spans {
		a.res.Rejected = append(a.res.Rejected, otlp.Rejected{TraceID: sp.TraceID, SpanID: sp.SpanID, Reason: reason})
	}
}

// refuse rejects spans stored together, which the native checks refused
// with err: a bad field is named by its span rather than by its place in
// the call ("span 00f0…: input_tokens …", not "steps[1].input_tokens").
func (a *spanAttempt) refuse(chunk []otlp.Span, err error) {
	reason := runproof.ErrorMessage(err)
	var e *runproof.Error
	if errors.As(err, &e) && len(e.Fields) > 0 {
		parts := make([]string, len(e.Fields))
		for k, f := range e.Fields {
			i, field, ok := StepOf(f.Field)
			switch {
			case !ok || i >= len(chunk):
				parts[k] = f.Field + ": " + f.Message
			case field == "":
				parts[k] = fmt.Sprintf("span %s: %s", chunk[i].SpanID, f.Message)
			default:
				parts[k] = fmt.Sprintf("span %s: %s %s", chunk[i].SpanID, field, f.Message)
			}
		}
		reason = strings.Join(parts, "; ")
	}
	a.reject(chunk, reason)
}

// refusedAll returns the rejections of the spans of a run not opened yet
// when AppendSteps would refuse every one of them, nil when it would store
// some: it refuses the steps ValidateSteps refuses, and those that bring
// the new run's totals out of range.
func refusedAll(spans []otlp.Span, now time.Time) []otlp.Rejected {
	var a spanAttempt
	for chunk := range slices.Chunk(spans, MaxStepsPerCall) {
		steps, err := ValidateSteps(spanInputs(chunk, 0), now)
		var tot runproof.Totals
		for i := 0; err == nil && i < len(steps); i++ {
			err = checkTotals(i, tot, steps[i])
			tot = tot.Add(steps[i])
		}
		if err == nil {
			return nil
		}
		a.refuse(chunk, err)
	}
	return a.res.Rejected
}

// setResentApart counts the spans stored before with the same content as
// re-sent, rejects those stored with other content, and returns the
// others, to append.
func (a *spanAttempt) setResentApart(spans []otlp.Span, stored map[spanKey]runproof.Step, now time.Time) (fresh []otlp.Span) {
	for _, sp := range spans {
		old, ok := stored[keyOf(sp)]
		if !ok {
			fresh = append(fresh, sp)
			continue
		}
		if steps, err := ValidateSteps(spanInputs([]otlp.Span{sp}, old.Index), now); err != nil || steps[0].ContentHash != old.ContentHash {
			a.reject([]otlp.Span{sp}, fmt.Sprintf("it is already stored as step %d with other content (content_hash %s)", old.Index, old.ContentHash))
			continue
		}
		a.res.Resent++
		a.kept[sp.SpanID] = true
	}
	return fresh
}

// appendSpans appends fresh spans as the run's next steps, MaxStepsPerCall
// at a time, and returns the run as they leave it; raced is true when
// another export of the run (or its end) came in between.
func (s *Service) appendSpans(ctx context.Context, tenantID string, run runproof.Run, fresh []otlp.Span, e *runSpans,
	a *spanAttempt, now time.Time) (cur runproof.Run, raced bool, err error) {
	// A span that starts too long before its run is rejected alone, as
	// AppendSteps would refuse its whole call.
	earliest := run.StartedAt.Add(-MaxStepBeforeRun)
	fresh = slices.DeleteFunc(fresh, func(sp otlp.Span) bool {
		if !sp.Timestamp.Before(earliest) {
			return false
		}
		a.reject([]otlp.Span{sp}, fmt.Sprintf("it starts more than %v before its run started (%s)", MaxStepBeforeRun,
			runproof.FormatTime(run.StartedAt)))
		return true
	})
	next, cur := run.Totals.Steps, run
	for len(fresh) > 0 {
		chunk := fresh[:min(len(fresh), MaxStepsPerCall)]
		fresh = fresh[len(chunk):]
		steps, err := ValidateSteps(spanInputs(chunk, next), now)
		if err != nil {
			a.refuse(chunk, err)
			continue
		}
		out, err := s.appendSteps(ctx, tenantID, run.ID, steps, now)
		switch {
		case err == nil:
		case errors.Is(err, errRunMoved):
			return cur, true, nil
		case runproof.ErrorCode(err) == runproof.EINVALID:
			a.refuse(chunk, err)
			continue
		default:
			return cur, false, err
		}
		s.spans.remember(e, next, chunk)
		next += int64(len(chunk))
		a.res.Steps = append(a.res.Steps, out.Steps...)
		for _, sp := range chunk {
			a.kept[sp.SpanID] = true
		}
		if out.Decision == AgentStop {
			cur.Status, cur.IncidentID = runproof.RunStopped, out.IncidentID
		}
	}
	return cur, false, nil
}

// endSpanRun ends the run as its root span says (failed when the span's
// status is an error) and returns it; a run that ended before, or
// differently, keeps its first end. A span that ends before the run
// started (the agent's clock behind the one that opened the run) ends it
// at its start.
func (s *Service) endSpanRun(ctx context.Context, tenantID string, cur runproof.Run, end *otlp.End) (runproof.Run, error) {
	status := runproof.RunCompleted
	if end.Failed {
		status = runproof.RunFailed
	}
	at := runproof.Timestamp(end.At)
	if at.Before(cur.StartedAt) {
		at = cur.StartedAt
	}
	ended, err := s.CompleteRun(ctx, tenantID, cur.ID, CompleteInput{Status: status, CompletedAt: at.Format(time.RFC3339Nano)})
	switch runproof.ErrorCode(err) {
	case "":
		return ended, nil
	case runproof.ECONFLICT, runproof.EINVALID:
		return cur, nil
	}
	return cur, err
}

// openSpanRun creates the run of spans from its first ones, or returns it
// when another export created it meanwhile.
func (s *Service) openSpanRun(ctx context.Context, tenantID string, r otlp.Run) (runproof.Run, error) {
	run, _, err := s.CreateRun(ctx, tenantID, RunInput{RunID: r.ID, AgentID: r.AgentID, Goal: r.Goal,
		TraceID: r.TraceID, StartedAt: r.StartedAt.Format(time.RFC3339Nano)})
	if runproof.ErrorCode(err) == runproof.ECONFLICT { // created meanwhile, by another export
		return s.store.GetRun(ctx, tenantID, r.ID)
	}
	return run, err
}

// storedSpans returns the run's stored steps that came from spans of this
// export, by span key.
func (s *Service) storedSpans(ctx context.Context, tenantID string, run runproof.Run, spans []otlp.Span, e *runSpans) (map[spanKey]runproof.Step, error) {
	if run.Totals.Steps == 0 || len(spans) == 0 {
		return nil, nil
	}
	indexes, err := s.spans.lookup(ctx, s.store, e, tenantID, run, spans)
	if err != nil || len(indexes) == 0 {
		return nil, err
	}
	from, to := int64(math.MaxInt64), int64(-1)
	keys := make(map[int64]spanKey, len(indexes))
	for key, i := range indexes {
		from, to = min(from, i), max(to, i)
		keys[i] = key
	}
	out := make(map[spanKey]runproof.Step, len(indexes))
	for from <= to { // a page at a time: the steps between can be many
		steps, err := s.store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: run.ID,
			FromIndex: from, Limit: int(min(to-from+1, MaxTracePage)), MaxContentBytes: runproof.StepPageBytes})
		if err != nil || len(steps) == 0 {
			return out, err
		}
		for _, st := range steps {
			if key, ok := keys[st.Index]; ok {
				out[key] = st
			}
		}
		from = steps[len(steps)-1].Index + 1
	}
	return out, nil
}

// spanKey identifies a span: its trace id and span id.
type spanKey [24]byte

// keyOf is the key of a span whose ids are hex of the right lengths, as
// the mapping and otlp.SpanOf give them.
func keyOf(sp otlp.Span) spanKey {
	var k spanKey
	_, _ = hex.Decode(k[:16], []byte(sp.TraceID))
	_, _ = hex.Decode(k[16:], []byte(sp.SpanID))
	return k
}

// spanIndex remembers, per run, which step holds which span, for the steps
// below a count. Stored steps never change, so a run's entry is brought up
// to date by reading only the steps stored since (by index, which is
// cheap), whoever stored them; recognising a re-sent span then costs no
// scan of the run. It holds at most maxSpanKeys spans and starts afresh
// when full.
type spanIndex struct {
	page int // how many steps lookup reads at once (MaxTracePage)

	mu   sync.Mutex
	runs map[string]*runSpans // by tenant and run id
	keys int
}

const maxSpanKeys = 1 << 20

// runSpans is one run's entry; its lock is held for the whole of an export
// of the run.
type runSpans struct {
	mu    sync.Mutex
	steps int64 // the steps below this index are in byKey
	byKey map[spanKey]int64
}

func (x *spanIndex) entry(tenantID, runID string) *runSpans {
	x.mu.Lock()
	defer x.mu.Unlock()
	id := tenantID + "\x00" + runID
	if x.runs == nil || x.keys > maxSpanKeys {
		x.runs, x.keys = map[string]*runSpans{}, 0
	}
	e := x.runs[id]
	if e == nil {
		e = &runSpans{byKey: map[spanKey]int64{}}
		x.runs[id] = e
	}
	return e
}

func (x *spanIndex) count(n int) {
	x.mu.Lock()
	x.keys += n
	x.mu.Unlock()
}

// lookup returns the step index of each of spans already stored in run,
// whose entry e the caller holds.
func (x *spanIndex) lookup(ctx context.Context, store runproof.Store, e *runSpans, tenantID string, run runproof.Run, spans []otlp.Span) (map[spanKey]int64, error) {
	for e.steps < run.Totals.Steps { // a page at a time: a run may be long
		steps, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: run.ID, FromIndex: e.steps, Limit: x.page,
			MaxContentBytes: runproof.StepPageBytes})
		if err != nil {
			return nil, err
		}
		for _, st := range steps {
			if traceID, spanID, ok := otlp.SpanOf(st.Content); ok {
				e.byKey[keyOf(otlp.Span{TraceID: traceID, SpanID: spanID})] = st.Index
			}
			e.steps = st.Index + 1
		}
		x.count(len(steps))
		if len(steps) == 0 {
			break
		}
	}
	out := map[spanKey]int64{}
	for _, sp := range spans {
		if i, ok := e.byKey[keyOf(sp)]; ok {
			out[keyOf(sp)] = i
		}
	}
	return out, nil
}

// remember records spans just stored as the steps from index from on, when
// the run's entry e, which the caller holds, is up to date with them.
func (x *spanIndex) remember(e *runSpans, from int64, spans []otlp.Span) {
	if e.steps != from {
		return // behind: the next lookup reads them from the store
	}
	for i, sp := range spans {
		e.byKey[keyOf(sp)] = from + int64(i)
	}
	e.steps = from + int64(len(spans))
	x.count(len(spans))
}

// spanInputs writes spans as the step inputs of the native API, numbered
// from index from, so that they go through the same validation and hashing.
func spanInputs(spans []otlp.Span, from int64) []StepInput {
	in := make([]StepInput, len(spans))
	for i, sp := range spans {
		index := from + int64(i)
		in[i] = StepInput{StepIndex: &index, Timestamp: runproof.FormatTime(sp.Timestamp), StepType: sp.StepType,
			InputTokens: sp.InputTokens, OutputTokens: sp.OutputTokens,
			CostCents:  Number(runproof.FormatFixed(sp.CostMicrocents, runproof.MicrocentsPerCent)),
			DurationMs: Number(runproof.FormatFixed(sp.DurationMicros, runproof.MicrosPerMilli)),
			Content:    jsontext.Value(sp.Content)}
	}
	return in
}
