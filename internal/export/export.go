package export

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/bundlezip"
	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

// Artifacts keeps rendered exports (artifact.Dir keeps them on disk).
type Artifacts interface {
	Create(key string) (artifact.Pending, error)
	Open(key string) (io.ReadSeekCloser, error)
	Remove(key string) error
	Sweep(prefix string, before time.Time) (int, error)
}

// Exporter makes exports. Create it with New.
type Exporter struct {
	store     runproof.Store
	artifacts Artifacts
	keys      *signing.Keyring
	ledger    Ledger
	unsynced  sync.Map       // tenant ids whose log misses a finished export
	making    sync.Map       // export id → tenant id of the exports being made
	turns     chan struct{}  // a place for each export made at once
	started   sync.WaitGroup // the exports Start began
	queued    atomic.Int64   // of those, how many wait for their turn
	draining  chan struct{}  // closed by Drain: no export takes a turn any more
	drainOnce sync.Once
	log       *slog.Logger
	now       func() time.Time
	newID     func() string
}

// Options tune an Exporter; zero values take defaults.
type Options struct {
	// Keys sign ZIP bundles; without them ZIP is not offered.
	Keys *signing.Keyring
	// Ledger, when set, records every finished export in the export
	// ledger, and every ZIP carries the proof of its sealed manifest.
	Ledger Ledger
	Logger *slog.Logger
	Now    func() time.Time
	NewID  func() string
	// Concurrent is how many exports are made at once (default: the
	// cores, at least 2); others wait their turn. A JSON or CSV export
	// holds a few MB whatever its run's length; a PDF report, alone or in
	// a ZIP, about 5 KB a step (500 MB for 100 000 steps).
	Concurrent int
}

// Ledger records exports in the export ledger (package ledger): every
// finished export, and before a ZIP is written, its sealed manifest, whose
// proof the ZIP carries.
type Ledger interface {
	// Ready refuses (ECONFLICT) a tenant's exports that could not be
	// appended: its log's head is signed by a key this process does not know.
	Ready(ctx context.Context, tenantID string) error
	Append(ctx context.Context, rec runproof.Export) (int64, error)
	AppendManifest(ctx context.Context, rec runproof.Export) (int64, error)
	ProveManifest(ctx context.Context, tenantID, exportID string) (ledger.Proof, error)
	Sync(ctx context.Context, tenantID string) (int, error)
}

// New returns an Exporter over a store and an artifact store.
func New(store runproof.Store, artifacts Artifacts, opts Options) *Exporter {
	e := &Exporter{store: store, artifacts: artifacts, keys: opts.Keys, ledger: opts.Ledger, log: opts.Logger, now: opts.Now, newID: opts.NewID}
	if e.newID == nil {
		e.newID = runproof.NewID
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if opts.Concurrent <= 0 {
		opts.Concurrent = max(2, runtime.GOMAXPROCS(0))
	}
	e.turns = make(chan struct{}, opts.Concurrent)
	e.draining = make(chan struct{})
	return e
}

// errDraining is the end of an export still waiting for its turn when the
// process began to stop (Drain).
var errDraining = runproof.Errorf(runproof.EUNAVAILABLE, "the server began to stop before the export's turn came: ask again")

// Drain makes the exports waiting for their turn, and those asked for from
// now on, fail at once (EUNAVAILABLE, recorded as such) instead of
// starting: for a process that stops, whose grace is for the exports
// being made. Those go on.
func (e *Exporter) Drain() {
	e.drainOnce.Do(func() { close(e.draining) })
}

// Input is an export request as a user sends it (API.md "Exports").
type Input struct {
	Scope           runproof.ExportScope  `json:"scope" openapi:"enum=llm_run|compliance|audit|system"`
	BundleType      runproof.BundleType   `json:"bundle_type" openapi:"enum=evidence|soc2|executive_debrief"`
	RunID           string                `json:"run_id"`
	IncidentID      string                `json:"incident_id"`
	PeriodStart     string                `json:"period_start"`
	PeriodEnd       string                `json:"period_end"`
	Format          runproof.ExportFormat `json:"format" openapi:"required,enum=json|csv|pdf|zip"`
	ExportReason    string                `json:"export_reason"`
	IncludeRawSteps *bool                 `json:"include_raw_steps"`
	IncludeContent  bool                  `json:"include_content"`
	PreparedFor     string                `json:"prepared_for"`
	PreparedBy      string                `json:"prepared_by"`                                                // debrief: default the requester's name, else "system"
	Classification  string                `json:"classification" openapi:"enum=INTERNAL|CONFIDENTIAL|PUBLIC"` // debrief; default CONFIDENTIAL
	CorrelationID   string                `json:"correlation_id"`
}

// Requester is who asks, as the caller's credentials say (never the body).
type Requester struct {
	ID              string // user id, agent id, key id or "system"
	Origin          runproof.Origin
	SourceComponent string // api, cli, demo, scheduler
	CorrelationID   string // from the request, when the body gives none
	Name            string // how people know them (a key's name), for a debrief's prepared_by; may be empty
}

// Formats returns the formats the exporter can produce: ZIP needs a
// signing key.
func (e *Exporter) Formats() []runproof.ExportFormat {
	f := []runproof.ExportFormat{runproof.FormatJSON, runproof.FormatCSV, runproof.FormatPDF}
	if e.keys != nil {
		f = append(f, runproof.FormatZIP)
	}
	return f
}

// maxReason is the longest export_reason, in bytes.
const maxReason = 1000

// request is a checked Input.
type request struct {
	runproof.ExportRequest
	includeRawSteps bool
	includeContent  bool
	preparedFor     string
	preparedBy      string
	classification  string
}

// check checks an export's input (validate) and resolves what it covers
// (resolve).
func (e *Exporter) check(ctx context.Context, tenantID string, who Requester, in Input) (request, error) {
	r, err := e.validate(tenantID, who, in)
	if err != nil {
		return r, err
	}
	return e.resolve(ctx, r)
}

// validate checks an export's input, reading nothing: every field at
// fault is named at once.
func (e *Exporter) validate(tenantID string, who Requester, in Input) (request, error) {
	var errs runproof.Fields
	now := runproof.Timestamp(e.now())
	r := request{ExportRequest: runproof.ExportRequest{TenantID: tenantID, Scope: in.Scope, BundleType: in.BundleType,
		Format: in.Format, RequestedBy: who.ID, Origin: who.Origin, SourceComponent: who.SourceComponent,
		CorrelationID: in.CorrelationID, ExportReason: in.ExportReason, CreatedAt: now},
		includeRawSteps: in.IncludeRawSteps == nil || *in.IncludeRawSteps, includeContent: in.IncludeContent, preparedFor: in.PreparedFor,
		preparedBy: cmp.Or(in.PreparedBy, who.Name), classification: in.Classification}
	if r.CorrelationID == "" {
		r.CorrelationID = who.CorrelationID
	}
	if r.Scope == "" {
		r.Scope = runproof.ScopeLLMRun
	}
	if r.BundleType == "" {
		r.BundleType = runproof.BundleEvidence
	}
	switch r.Scope {
	case runproof.ScopeLLMRun, runproof.ScopeCompliance:
	case runproof.ScopeAudit, runproof.ScopeSystem:
		errs.Add("scope", "%q exports are not available yet: export a run or an incident (llm_run), "+
			"or a SOC 2 bundle of one for a compliance period (compliance)", r.Scope)
	default:
		errs.Add("scope", "must be llm_run, compliance, audit or system")
	}
	switch r.BundleType {
	case runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief:
	default:
		errs.Add("bundle_type", "must be evidence, soc2 or executive_debrief")
	}
	switch {
	case r.Format == "":
		errs.Add("format", "is required: json, csv, pdf or zip")
	case r.Format == runproof.FormatZIP && e.keys == nil:
		errs.Add("format", "zip exports need a signing key, and this server has none")
	case !slices.Contains(e.Formats(), r.Format):
		errs.Add("format", "must be json, csv, pdf or zip")
	}
	switch in.Classification {
	case "", evidence.ClassInternal, evidence.ClassConfidential, evidence.ClassPublic:
	default:
		errs.Add("classification", "must be INTERNAL, CONFIDENTIAL or PUBLIC")
	}
	errs.Prose("export_reason", in.ExportReason, maxReason)
	errs.Text("prepared_for", in.PreparedFor, runproof.MaxName)
	errs.Text("prepared_by", in.PreparedBy, runproof.MaxName)
	errs.Text("correlation_id", in.CorrelationID, runproof.MaxCorrelationID)
	for _, f := range []struct{ name, value string }{{"run_id", in.RunID}, {"incident_id", in.IncidentID}} {
		if f.value != "" && !runproof.ValidID(f.value) { // as runs and incidents are stored
			errs.Add(f.name, runproof.IDRule)
		}
	}
	for _, p := range []struct {
		name, value string
		dst         **time.Time
	}{{"period_start", in.PeriodStart, &r.PeriodStart}, {"period_end", in.PeriodEnd, &r.PeriodEnd}} {
		if p.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, p.value)
		if err != nil {
			errs.Add(p.name, "must be an RFC 3339 timestamp")
			continue
		}
		t = runproof.Timestamp(t)
		*p.dst = &t
	}
	if r.PeriodStart != nil && r.PeriodEnd != nil && !r.PeriodStart.Before(*r.PeriodEnd) {
		errs.Add("period_end", "must be after period_start")
	}
	if r.BundleType != runproof.BundleSOC2 {
		if r.Scope == runproof.ScopeCompliance {
			errs.Add("scope", "compliance is the scope of a SOC 2 bundle: leave it out, or ask for a soc2 bundle")
		}
		for _, p := range []struct{ name, value string }{{"period_start", in.PeriodStart}, {"period_end", in.PeriodEnd}} {
			if p.value != "" {
				errs.Add(p.name, "only a SOC 2 bundle attests a compliance period: leave it out, or ask for a soc2 bundle")
			}
		}
	}
	switch {
	case in.RunID != "" || in.IncidentID != "":
	case r.Scope == runproof.ScopeCompliance:
		errs.Add("run_id", "give a run_id or an incident_id: a compliance export covers one incident within its period "+
			"(exports of a whole period are not available yet)")
	default:
		errs.Add("run_id", "give a run_id or an incident_id")
	}
	if err := errs.Err(); err != nil {
		return r, err
	}
	r.RunID, r.IncidentID = in.RunID, in.IncidentID
	return r, nil
}

// resolve reads what a validated export covers: its run, and its incident
// if any. A reference to a record the tenant does not have (another
// tenant's included) is a bad field.
func (e *Exporter) resolve(ctx context.Context, r request) (request, error) {
	tenantID := r.TenantID
	missing := func(err error, field, what string) error {
		if runproof.ErrorCode(err) == runproof.ENOTFOUND {
			return runproof.Invalid(runproof.FieldError{Field: field, Message: "no such " + what + " in this tenant"})
		}
		return err
	}
	var inc runproof.Incident
	if r.IncidentID != "" {
		var err error
		if inc, err = e.store.GetIncident(ctx, tenantID, r.IncidentID); err != nil {
			return r, missing(err, "incident_id", "incident")
		}
		if r.RunID != "" && r.RunID != inc.RunID {
			return r, runproof.Invalid(runproof.FieldError{Field: "run_id", Message: "is not the run of this incident"})
		}
		r.RunID = inc.RunID
	} else {
		run, err := e.store.GetRun(ctx, tenantID, r.RunID)
		if err != nil {
			return r, missing(err, "run_id", "run")
		}
		r.IncidentID = run.IncidentID
	}
	if r.BundleType == runproof.BundleExecutiveDebrief && r.IncidentID == "" {
		return r, runproof.Invalid(runproof.FieldError{Field: "run_id",
			Message: "this run has no incident: an executive debrief describes an incident; export an evidence bundle instead"})
	}
	if r.BundleType == runproof.BundleSOC2 && r.IncidentID != "" && (r.PeriodStart != nil || r.PeriodEnd != nil) {
		if inc.ID == "" { // named by its run
			var err error
			if inc, err = e.store.GetIncident(ctx, tenantID, r.IncidentID); err != nil {
				return r, err
			}
		}
		if err := checkPeriod(r, inc); err != nil {
			return r, err
		}
	}
	return r, nil
}

// checkPeriod refuses a SOC 2 compliance period that does not hold the
// incident's detection: the bundle attests how the incident was handled
// within it.
func checkPeriod(r request, inc runproof.Incident) error {
	start, end := evidence.IncidentPeriod(inc.DetectedAt, r.PeriodStart, r.PeriodEnd)
	detected := runproof.FormatTime(inc.DetectedAt)
	switch {
	case start.After(inc.DetectedAt):
		return runproof.Invalid(runproof.FieldError{Field: "period_start", Message: fmt.Sprintf(
			"must be at or before the incident's detection, %s: the period a SOC 2 bundle attests holds its incident", detected)})
	case !end.After(inc.DetectedAt):
		return runproof.Invalid(runproof.FieldError{Field: "period_end", Message: fmt.Sprintf(
			"must be after the incident's detection, %s: the period a SOC 2 bundle attests holds its incident", detected)})
	}
	return nil
}

// Export makes one export end to end and returns its record. The record
// exists (pending) before any work starts and ends completed or failed.
func (e *Exporter) Export(ctx context.Context, tenantID string, who Requester, in Input) (runproof.Export, error) {
	r, err := e.prepare(ctx, tenantID, who, in)
	if err != nil {
		return runproof.Export{}, err
	}
	// Its turn comes before its record, so that one given up while waiting
	// leaves nothing behind.
	if err := e.takeTurn(ctx); err != nil {
		return runproof.Export{}, err
	}
	defer func() { <-e.turns }()
	if r, err = e.record(ctx, r); err != nil {
		return runproof.Export{}, err
	}
	defer e.making.Delete(r.ID)
	return e.finish(ctx, r)
}

// MaxQueued bounds how long an export Start recorded waits for its turn:
// one that waits longer fails, so that with MaxDuration it ends before
// AbandonedAfter.
const MaxQueued = 20 * time.Minute

// queuedPerPlace is how many exports Start records may wait for each
// place of the exports made at once; Start refuses more.
const queuedPerPlace = 4

// Start records an export, pending, and returns its record at once; the
// export then waits for its turn (MaxQueued at most) and is made on its
// own, under bg (cancel it to interrupt the export, recorded as such),
// and ends its record completed or failed, as Export does. Start refuses
// an export (EUNAVAILABLE) while queuedPerPlace times as many as are made
// at once already wait.
func (e *Exporter) Start(ctx, bg context.Context, tenantID string, who Requester, in Input) (runproof.Export, error) {
	r, err := e.prepare(ctx, tenantID, who, in)
	if err != nil {
		return runproof.Export{}, err
	}
	if limit := int64(queuedPerPlace * cap(e.turns)); e.queued.Add(1) > limit {
		e.queued.Add(-1)
		return runproof.Export{}, runproof.Errorf(runproof.EUNAVAILABLE, "%d exports already wait for one of the %d made at once: ask again later",
			limit, cap(e.turns))
	}
	if r, err = e.record(ctx, r); err != nil {
		e.queued.Add(-1)
		return runproof.Export{}, err
	}
	e.started.Go(func() {
		defer e.making.Delete(r.ID)
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("export %s: panic: %v", r.ID, p)
				e.end(bg, r, runproof.ExportEvent{}, err, "")
			}
			var failed *Failed
			switch {
			case errors.Is(err, errEndedMeanwhile):
				e.log.WarnContext(bg, "export ended meanwhile", slog.String("export_id", r.ID), slog.Any("error", err))
			case err != nil && !errors.As(err, &failed): // a failed export is logged already
				e.log.ErrorContext(bg, "export not ended", slog.String("export_id", r.ID), slog.Any("error", err))
			}
		}()
		err = e.queue(bg)
		e.queued.Add(-1)
		if err != nil {
			_, err = e.end(bg, r, runproof.ExportEvent{}, err, "")
			return
		}
		defer func() { <-e.turns }()
		_, err = e.finish(bg, r)
	})
	return runproof.FoldExport(r.ExportRequest, nil), nil
}

// Wait waits until the exports Start began have ended, or ctx ends. Call
// it once no more Start can come (a server's requests have ended).
func (e *Exporter) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { e.started.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepare checks a request.
func (e *Exporter) prepare(ctx context.Context, tenantID string, who Requester, in Input) (request, error) {
	r, err := e.check(ctx, tenantID, who, in)
	if err != nil {
		return r, err
	}
	if e.ledger != nil {
		if err := e.ledger.Ready(ctx, tenantID); err != nil {
			return r, err // it could not be recorded in the ledger
		}
	}
	return r, nil
}

// record records the export, pending, among those being made (Interrupt
// ends them): each recorded export must be ended (end) and removed from
// e.making once.
func (e *Exporter) record(ctx context.Context, r request) (request, error) {
	r.CreatedAt = runproof.Timestamp(e.now())
	r.ID = e.newID()
	if err := e.store.CreateExport(ctx, r.ExportRequest); err != nil {
		return r, err
	}
	e.making.Store(r.ID, r.TenantID)
	return r, nil
}

// queue waits, in the background, for the turn of an export Start
// recorded: for MaxQueued at most, and until bg ends.
func (e *Exporter) queue(bg context.Context) error {
	timer := time.NewTimer(MaxQueued)
	defer timer.Stop()
	err := e.waitTurn(bg, timer.C)
	if errors.Is(err, errWaitedTooLong) {
		return runproof.Errorf(runproof.EUNAVAILABLE, "it waited %s for one of the %d exports made at once to finish: ask again later",
			MaxQueued, cap(e.turns))
	}
	return err
}

// errWaitedTooLong is waitTurn's end when its time to wait ran out.
var errWaitedTooLong = errors.New("waited too long for a turn")

// waitTurn waits for one of the places of the exports made at once until
// ctx ends (its error) or expired fires (errWaitedTooLong; nil for
// never); none is taken once the process drains (errDraining).
func (e *Exporter) waitTurn(ctx context.Context, expired <-chan time.Time) error {
	select {
	case <-e.draining:
		return errDraining
	default:
	}
	select {
	case e.turns <- struct{}{}:
		return nil
	case <-e.draining:
		return errDraining
	case <-ctx.Done():
		return ctx.Err()
	case <-expired:
		return errWaitedTooLong
	}
}

// finish makes a recorded export, in its turn, and records its outcome;
// ctx ending interrupts it.
func (e *Exporter) finish(ctx context.Context, r request) (runproof.Export, error) {
	// An export that runs longer than MaxDuration fails by itself, so that
	// one still pending after AbandonedAfter was surely abandoned.
	pctx, cancel := context.WithTimeout(ctx, MaxDuration)
	ev, err := e.produce(pctx, r)
	timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	reason := ""
	if err != nil && timedOut {
		reason = fmt.Sprintf("it took longer than %s", MaxDuration)
	}
	return e.end(ctx, r, ev, err, reason)
}

// errEndedMeanwhile is the error of an export whose end was recorded by
// another (Interrupt) while it was made.
var errEndedMeanwhile = errors.New("its end was recorded meanwhile (the process stopping)")

// end records how a recorded export ended: ev (completed) or, after
// buildErr, failed, saying reason or else why buildErr stopped it; then
// appends it to the ledger.
func (e *Exporter) end(ctx context.Context, r request, ev runproof.ExportEvent, buildErr error, reason string) (runproof.Export, error) {
	tenantID := r.TenantID
	if buildErr != nil {
		e.log.WarnContext(ctx, "export failed", slog.String("export_id", r.ID), slog.Any("error", buildErr))
		switch {
		case reason != "":
		case errors.Is(buildErr, context.Canceled) && ctx.Err() != nil:
			reason = "it was interrupted: the request was cancelled or the process stopped before it was done"
		default:
			reason = runproof.ErrorMessage(buildErr)
		}
		ev = runproof.ExportEvent{Kind: runproof.ExportEventFailed, Reason: reason}
	}
	ev.TenantID, ev.ExportID, ev.At = tenantID, r.ID, runproof.Timestamp(e.now())
	// The outcome is recorded even when the caller has gone, and once a
	// database that went away for a while is back, while the caller waits:
	// one who has gone, or a server that stops, tries once, and the export
	// then stays pending until Recover.
	octx := context.WithoutCancel(ctx)
	if err := runproof.RetryUnavailable(ctx, func() error { return e.store.AppendExportEvent(octx, ev) }); err != nil {
		if runproof.ErrorCode(err) == runproof.ECONFLICT {
			err = fmt.Errorf("%w: %w", errEndedMeanwhile, err)
			if ev.Kind == runproof.ExportEventCompleted { // its artifact is no one's
				if rerr := e.artifacts.Remove(artifactKey(r.ExportRequest)); rerr != nil {
					err = errors.Join(err, rerr)
				}
			}
		}
		return runproof.Export{}, fmt.Errorf("export %s: record outcome: %w", r.ID, err)
	}
	rec, err := e.store.GetExport(octx, tenantID, r.ID)
	if err != nil {
		return runproof.Export{}, err
	}
	e.appendToLedger(octx, rec)
	if buildErr != nil {
		return rec, &Failed{Export: rec, Err: buildErr}
	}
	return rec, nil
}

// appendToLedger records a finished export in the ledger. The export stands
// whether or not that works: a failed append is logged, and the tenant's
// log is brought up to date (Ledger.Sync) before its next export.
func (e *Exporter) appendToLedger(ctx context.Context, rec runproof.Export) {
	if e.ledger == nil {
		return
	}
	if _, behind := e.unsynced.Load(rec.TenantID); behind {
		if n, err := e.ledger.Sync(ctx, rec.TenantID); err == nil {
			e.log.InfoContext(ctx, "export ledger caught up", slog.String("tenant_id", rec.TenantID), slog.Int("appended", n))
			e.unsynced.Delete(rec.TenantID)
		}
	}
	if _, err := e.ledger.Append(ctx, rec); err != nil {
		e.log.ErrorContext(ctx, "export not recorded in the ledger yet; it will be before the tenant's next export",
			slog.String("export_id", rec.ID), slog.Any("error", err))
		e.unsynced.Store(rec.TenantID, true)
	}
}

// artifactKey names an export's artifact in the artifact store.
func artifactKey(r runproof.ExportRequest) string {
	return r.TenantID + "/" + r.ID + "." + string(r.Format)
}

// MaxDuration bounds the making of one export: one that takes longer
// fails ("context deadline exceeded"). Exports of 100 000 steps take
// seconds.
const MaxDuration = 30 * time.Minute

// AbandonedAfter is how long after it was requested an export that has not
// ended is taken for abandoned by a process that stopped: more than
// MaxQueued and MaxDuration, after which a live process has ended it itself.
const AbandonedAfter = time.Hour

// takeTurn waits for one of the places of the exports made at once, for
// as long as the request lasts.
func (e *Exporter) takeTurn(ctx context.Context) error {
	if ctx.Err() != nil {
		return runproof.Errorf(runproof.EUNAVAILABLE, "the export was not started: its request had ended (the server is stopping, or the client went away)")
	}
	err := e.waitTurn(ctx, nil)
	if err != nil && !errors.Is(err, errDraining) { // ctx ended
		return runproof.Errorf(runproof.EUNAVAILABLE, "the export was not started: its request ended while it waited for one of the %d exports made at once to finish; ask again",
			cap(e.turns))
	}
	return err
}

// Making returns how many exports this Exporter is making.
func (e *Exporter) Making() int {
	n := 0
	e.making.Range(func(_, _ any) bool { n++; return true })
	return n
}

// Interrupt records the exports this Exporter is still making as failed,
// interrupted, and returns how many: for a process that stops before they
// are done, which would otherwise leave them pending until Recover, an hour
// later. One that ends meanwhile keeps its own end.
// Its artifact, if the export goes on to write one, is removed by the
// export itself when its own end is refused.
func (e *Exporter) Interrupt(ctx context.Context) int {
	n := 0
	e.making.Range(func(id, tenant any) bool {
		ended, err := e.endInterrupted(ctx, tenant.(string), id.(string))
		if ended {
			n++
		} else if err != nil {
			e.log.WarnContext(ctx, "interrupted export not recorded", slog.String("export_id", id.(string)), slog.Any("error", err))
		}
		return true
	})
	return n
}

// endInterrupted records an export as failed, interrupted by the process
// making it stopping; false when it had ended already.
func (e *Exporter) endInterrupted(ctx context.Context, tenantID, exportID string) (bool, error) {
	err := e.store.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: tenantID, ExportID: exportID,
		Kind: runproof.ExportEventFailed, At: runproof.Timestamp(e.now()),
		Reason: "interrupted: the process making it stopped before it was done"})
	if runproof.ErrorCode(err) == runproof.ECONFLICT {
		return false, nil
	}
	return err == nil, err
}

// Recover ends what stopped processes left unfinished in a tenant's
// exports: an export requested AbandonedAfter ago or more that has not
// ended is recorded as failed and its artifact, if it got as far as one,
// removed; temporary artifact files of that age are removed; and finished
// exports missing from the ledger are appended to it (Ledger.Sync). It
// returns how many exports it ended.
func (e *Exporter) Recover(ctx context.Context, tenantID string) (int, error) {
	cutoff := e.now().Add(-AbandonedAfter)
	stale, err := e.store.UnfinishedExports(ctx, tenantID, cutoff)
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, rec := range stale {
		ok, err := e.endInterrupted(ctx, tenantID, rec.ID)
		if err != nil {
			return ended, err
		} else if !ok {
			continue // it ended meanwhile
		}
		ended++
		if err := e.artifacts.Remove(artifactKey(rec.ExportRequest)); err != nil {
			return ended, err
		}
	}
	if _, err := e.artifacts.Sweep(tenantID, cutoff); err != nil {
		return ended, err
	}
	if e.ledger != nil {
		if _, err := e.ledger.Sync(ctx, tenantID); err != nil {
			return ended, err
		}
	}
	return ended, nil
}

// RecoverAll runs Recover for every tenant that has exports, logging what
// it ended and what failed; one tenant's failure does not stop the others.
func (e *Exporter) RecoverAll(ctx context.Context) {
	tenants, err := e.store.ExportTenants(ctx)
	if err != nil {
		e.log.ErrorContext(ctx, "exports not recovered", slog.Any("error", err))
		return
	}
	for _, t := range tenants {
		n, err := e.Recover(ctx, t)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.ErrorContext(ctx, "exports not recovered", slog.String("tenant_id", t), slog.Any("error", err))
		case n > 0:
			e.log.WarnContext(ctx, "interrupted exports recorded as failed", slog.String("tenant_id", t), slog.Int("exports", n))
		}
	}
}

// Failed is the error of an export that was recorded as failed.
type Failed struct {
	Export runproof.Export
	Err    error
}

func (f *Failed) Error() string { return fmt.Sprintf("export %s failed: %v", f.Export.ID, f.Err) }
func (f *Failed) Unwrap() error { return f.Err }

// UserError says the failure to whoever asked for the export, naming the
// failed record, with the code of its cause; an export cut short (by a
// process stopping) is EUNAVAILABLE: asked again, it is done.
func (f *Failed) UserError() *runproof.Error {
	if errors.Is(f.Err, context.Canceled) {
		return runproof.Errorf(runproof.EUNAVAILABLE, "export %s was interrupted and is recorded as failed (%s): ask again",
			f.Export.ID, f.Export.FailureReason)
	}
	return runproof.Errorf(runproof.ErrorCode(f.Err), "export %s failed and is recorded as failed: %s",
		f.Export.ID, runproof.ErrorMessage(f.Err))
}

// produce builds, renders and stores the artifact, returning the completed
// event to record.
func (e *Exporter) produce(ctx context.Context, r request) (runproof.ExportEvent, error) {
	src, err := e.source(ctx, r)
	if err != nil {
		return runproof.ExportEvent{}, err
	}
	key := artifactKey(r.ExportRequest)
	pending, err := e.artifacts.Create(key)
	if err != nil {
		return runproof.ExportEvent{}, err
	}
	defer pending.Abort()
	// The checksum is of exactly the bytes stored, hence delivered.
	h := sha256.New()
	w := &countingWriter{w: ctxWriter{ctx, io.MultiWriter(pending, h)}}
	out := output{idSuffix: e.newID()}
	if e.keys != nil {
		out.key = e.keys.Active()
	}
	if e.ledger != nil {
		out.seal = func(s bundlezip.Sealed) ([]byte, error) { return e.seal(ctx, r, s) }
	}
	bundleID, err := render(ctx, w, r, src, out)
	if err != nil {
		return runproof.ExportEvent{}, err
	}
	if err := pending.Commit(); err != nil {
		return runproof.ExportEvent{}, err
	}
	steps, omitted := src.Run.Totals.Steps, int64(0)
	if !r.includeRawSteps {
		omitted = steps
	}
	return runproof.ExportEvent{Kind: runproof.ExportEventCompleted, Checksum: runproof.DigestPrefix + hex.EncodeToString(h.Sum(nil)),
		SizeBytes: w.n, BundleID: bundleID, Artifact: key, Steps: &steps, Remediation: src.Remediation(), StepsOmitted: &omitted}, nil
}

// seal records a ZIP export's signed manifest (the sealed event), appends
// it to the ledger and returns the proof of its leaf, for proof.json. Once
// appended, the sealed manifest stays in the ledger even if the export
// then fails: it was sealed.
func (e *Exporter) seal(ctx context.Context, r request, s bundlezip.Sealed) ([]byte, error) {
	ev := runproof.ExportEvent{TenantID: r.TenantID, ExportID: r.ID, Kind: runproof.ExportEventSealed,
		At: runproof.Timestamp(e.now()), BundleID: s.Manifest.BundleID, KeyID: s.Manifest.KeyID,
		ManifestSHA256: runproof.DigestBytes(s.ManifestJSON)}
	if err := e.store.AppendExportEvent(ctx, ev); err != nil {
		return nil, fmt.Errorf("record the sealed manifest: %w", err)
	}
	rec, err := e.store.GetExport(ctx, r.TenantID, r.ID)
	if err != nil {
		return nil, err
	}
	if _, err := e.ledger.AppendManifest(ctx, rec); err != nil {
		return nil, fmt.Errorf("record the sealed manifest in the ledger: %w", err)
	}
	p, err := e.ledger.ProveManifest(ctx, r.TenantID, r.ID)
	if err != nil {
		return nil, err
	}
	// The leaf made of the record must be the one anyone makes of the
	// manifest, or the ZIP's proof would prove nothing.
	leaf, err := ledger.ManifestLeaf(s.ManifestJSON)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(p.Leaf, leaf) {
		return nil, fmt.Errorf("the ledger's leaf of export %s is not the leaf of its manifest", r.ID)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ctxWriter writes to w until ctx ends, a MiB at a time: a renderer that
// writes a large document in one call (the PDF library) stops soon after
// its export is interrupted.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(b []byte) (n int, err error) {
	for len(b) > 0 && err == nil {
		if err = c.ctx.Err(); err == nil {
			var k int
			k, err = c.w.Write(b[:min(len(b), 1<<20)])
			n, b = n+k, b[k:]
		}
	}
	return n, err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// Open returns a completed export's artifact for download; the caller
// records the delivery (Delivered) once the artifact is sent.
func (e *Exporter) Open(ctx context.Context, tenantID, exportID string) (runproof.Export, io.ReadSeekCloser, error) {
	rec, err := e.store.GetExport(ctx, tenantID, exportID)
	if err != nil {
		return rec, nil, err
	}
	if rec.Status != runproof.ExportCompleted {
		return rec, nil, runproof.Errorf(runproof.ECONFLICT, "export %s is %s: there is nothing to download", exportID, rec.Status)
	}
	f, err := e.artifacts.Open(rec.Artifact)
	if err != nil {
		return rec, nil, err
	}
	return rec, f, nil
}

// Delivered records the first delivery of an export; later ones are no-ops.
func (e *Exporter) Delivered(ctx context.Context, rec runproof.Export) error {
	if rec.DeliveredAt != nil {
		return nil
	}
	err := e.store.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: rec.TenantID, ExportID: rec.ID,
		Kind: runproof.ExportEventDelivered, At: runproof.Timestamp(e.now())})
	if runproof.ErrorCode(err) == runproof.ECONFLICT {
		return nil // a concurrent download was first
	}
	return err
}

// Get returns one export record.
func (e *Exporter) Get(ctx context.Context, tenantID, exportID string) (runproof.Export, error) {
	return e.store.GetExport(ctx, tenantID, exportID)
}

// List returns export records, newest first.
func (e *Exporter) List(ctx context.Context, p runproof.ListExportsParams) ([]runproof.Export, error) {
	return e.store.ListExports(ctx, p)
}
