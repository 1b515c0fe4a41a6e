package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-json-experiment/json/jsontext"

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

// spanAttempts bounds the retries of an export that races another export of
// the same run for the next step indexes.
const spanAttempts = 5

// IngestSpans stores the spans of one run of an OTLP export (package otlp
// maps them) as steps, with the rules of the native step API:
//
//   - an unknown run is created (CreateRun) with the spans' agent, goal,
//     trace id and earliest start;
//   - a span already stored (same trace id, span id and start time) is a
//     no-op when its content is the same and rejected otherwise;
//   - new spans take the next step indexes, in the order given (start time,
//     then span id), and are judged by AppendSteps: after a stop they are
//     stored as violations;
//   - a run that ended (completed, failed, cancelled) takes no new spans:
//     they are rejected;
//   - the root span of a run named by its trace id ends the run, as failed
//     when its status is ERROR.
//
// Problems with the spans are reported in the result; the error is for the
// store failing, when the export should be retried.
func (s *Service) IngestSpans(ctx context.Context, tenantID string, r otlp.Run) (SpansResult, error) {
	for attempt := 1; ; attempt++ {
		res, raced, err := s.ingestSpansOnce(ctx, tenantID, r)
		if err != nil || !raced {
			return res, err
		}
		if attempt == spanAttempts {
			return SpansResult{}, fmt.Errorf("ingest spans of run %s: other exports of the run kept taking the next indexes", r.ID)
		}
	}
}

// ingestSpansOnce makes one attempt; raced is true when another export of
// the run took the indexes this one meant to use.
func (s *Service) ingestSpansOnce(ctx context.Context, tenantID string, r otlp.Run) (res SpansResult, raced bool, err error) {
	now := s.Now()
	res = SpansResult{RunID: r.ID, Decision: DecisionAllow}
	reject := func(spans []otlp.Span, reason string) {
		for _, sp := range spans {
			res.Rejected = append(res.Rejected, otlp.Rejected{TraceID: sp.TraceID, SpanID: sp.SpanID, Reason: reason})
		}
	}
	run, err := s.openSpanRun(ctx, tenantID, r)
	if code := runproof.ErrorCode(err); code == runproof.EINVALID {
		reject(r.Spans, runproof.ErrorMessage(err))
		return res, false, nil
	} else if err != nil {
		return res, false, err
	}
	stored, err := s.storedSpans(ctx, tenantID, run, r.Spans)
	if err != nil {
		return res, false, err
	}
	kept := map[string]bool{} // span ids stored, now or before
	var fresh []otlp.Span
	for _, sp := range r.Spans {
		old, ok := stored[sp.TraceID+sp.SpanID]
		if !ok {
			fresh = append(fresh, sp)
			continue
		}
		if steps, err := ValidateSteps(spanInputs([]otlp.Span{sp}, old.Index), now); err != nil || steps[0].ContentHash != old.ContentHash {
			reject([]otlp.Span{sp}, fmt.Sprintf("it is already stored as step %d with other content (content_hash %s)", old.Index, old.ContentHash))
			continue
		}
		res.Resent++
		kept[sp.SpanID] = true
	}
	switch run.Status {
	case runproof.RunCompleted, runproof.RunFailed, runproof.RunCancelled:
		reject(fresh, fmt.Sprintf("run %q is %s: it takes no more spans", run.ID, run.Status))
		fresh = nil
	}
	next := run.Totals.Steps
	for len(fresh) > 0 {
		chunk := fresh[:min(len(fresh), MaxStepsPerCall)]
		fresh = fresh[len(chunk):]
		steps, err := ValidateSteps(spanInputs(chunk, next), now)
		if err != nil {
			reject(chunk, runproof.ErrorMessage(err))
			continue
		}
		out, err := s.AppendSteps(ctx, tenantID, run.ID, steps)
		switch runproof.ErrorCode(err) {
		case "":
		case runproof.EINVALID, runproof.ECONFLICT:
			// Given indexes from the stored totals, only another export
			// of the run (or its end) in between explains these.
			return res, true, nil
		default:
			return res, false, err
		}
		next += int64(len(chunk))
		res.Steps = append(res.Steps, out.Steps...)
		for _, sp := range chunk {
			kept[sp.SpanID] = true
		}
	}
	if r.End != nil && kept[r.End.SpanID] {
		status := runproof.RunCompleted
		if r.End.Failed {
			status = runproof.RunFailed
		}
		_, err := s.CompleteRun(ctx, tenantID, run.ID, CompleteInput{Status: status, CompletedAt: r.End.At.Format(time.RFC3339Nano)})
		switch runproof.ErrorCode(err) {
		case "", runproof.ECONFLICT, runproof.EINVALID: // ended before, or differently: the first end stands
		default:
			return res, false, err
		}
	}
	final, err := s.store.GetRun(ctx, tenantID, run.ID)
	if err != nil {
		return res, false, err
	}
	res.Status, res.IncidentID = final.Status, final.IncidentID
	if final.StoppedAt != nil {
		res.Decision = DecisionStop
	}
	return res, false, nil
}

// openSpanRun returns the run, creating it from its first spans if needed.
func (s *Service) openSpanRun(ctx context.Context, tenantID string, r otlp.Run) (runproof.Run, error) {
	run, err := s.store.GetRun(ctx, tenantID, r.ID)
	if runproof.ErrorCode(err) != runproof.ENOTFOUND {
		return run, err
	}
	run, _, err = s.CreateRun(ctx, tenantID, RunInput{RunID: r.ID, AgentID: r.AgentID, Goal: r.Goal,
		TraceID: r.TraceID, StartedAt: r.StartedAt.Format(time.RFC3339Nano)})
	if runproof.ErrorCode(err) == runproof.ECONFLICT { // created meanwhile, by another export
		return s.store.GetRun(ctx, tenantID, r.ID)
	}
	return run, err
}

// storedSpans returns the run's stored steps that came from spans of this
// export, by trace id and span id. A span's step has the span's start time,
// so only the steps between the earliest and the latest start are read.
func (s *Service) storedSpans(ctx context.Context, tenantID string, run runproof.Run, spans []otlp.Span) (map[string]runproof.Step, error) {
	if run.Totals.Steps == 0 || len(spans) == 0 {
		return nil, nil
	}
	from, to := spans[0].Timestamp, spans[0].Timestamp
	for _, sp := range spans[1:] {
		from, to = minTime(from, sp.Timestamp), maxTime(to, sp.Timestamp)
	}
	steps, err := s.store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: run.ID,
		From: from, To: to.Add(time.Microsecond)})
	if err != nil {
		return nil, err
	}
	out := map[string]runproof.Step{}
	for _, st := range steps {
		var c struct {
			Span struct {
				TraceID string `json:"trace_id"`
				SpanID  string `json:"span_id"`
			} `json:"otel_span"`
		}
		if len(st.Content) > 0 && json.Unmarshal(st.Content, &c) == nil && c.Span.SpanID != "" {
			out[c.Span.TraceID+c.Span.SpanID] = st
		}
	}
	return out, nil
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

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
