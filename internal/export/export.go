package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/bundlezip"
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
	unsynced  sync.Map        // tenant ids whose log misses a finished export
	making    sync.Map        // export id → *lease of the exports being made
	renewal   time.Duration   // how often a lease is renewed (Options.LeaseRenewal)
	backoff   []time.Duration // waits between tries at an outcome (Options.Backoff)
	turns     chan struct{}   // a place for each export made at once
	started   sync.WaitGroup  // the exports Start began
	queued    atomic.Int64    // of those, how many wait for their turn
	completed atomic.Int64    // exports ended completed
	failed    atomic.Int64    // exports ended failed
	draining  chan struct{}   // closed by Drain: no export takes a turn any more
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
	// a ZIP, keeps up to 100 000 steps decoded (some 40 MB), and reads a
	// longer run's back from its spool.
	Concurrent int
	// LeaseRenewal is how often the lease of an export being made is
	// renewed (default LeaseFor/4); it must be well under LeaseFor, or
	// the lease of a live export runs out.
	LeaseRenewal time.Duration
	// Backoff is how long to wait between tries to record an export's
	// outcome while the database is away or full (default
	// runproof.Backoff(), about half a minute in all); after the last,
	// the export's lease tries on until the database takes it.
	Backoff []time.Duration
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
	// CheckSteps checks a run's steps, as they are read (without their
	// content when withoutContent), against those the ledger sealed.
	CheckSteps(ctx context.Context, tenantID, runID string, withoutContent bool) (*ledger.StepsCheck, error)
}

// New returns an Exporter over a store and an artifact store.
func New(store runproof.Store, artifacts Artifacts, opts Options) *Exporter {
	e := &Exporter{store: store, artifacts: artifacts, keys: opts.Keys, ledger: opts.Ledger, log: opts.Logger, now: opts.Now, newID: opts.NewID,
		renewal: opts.LeaseRenewal, backoff: opts.Backoff}
	if e.backoff == nil {
		e.backoff = runproof.Backoff()
	}
	if e.renewal <= 0 {
		e.renewal = LeaseFor / 4
	}
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

// Formats returns the formats the exporter can produce: ZIP needs a
// signing key.
func (e *Exporter) Formats() []runproof.ExportFormat {
	f := []runproof.ExportFormat{runproof.FormatJSON, runproof.FormatCSV, runproof.FormatPDF}
	if e.keys != nil {
		f = append(f, runproof.FormatZIP)
	}
	return f
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
	defer e.release(r.ID)
	return e.finish(ctx, r)
}

// record records the export, pending, among those being made (Interrupt
// ends them), and starts renewing its lease: each recorded export must be
// ended (end), then released (release), its lease renewed until its end is
// written.
func (e *Exporter) record(ctx context.Context, r request) (request, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	r.CreatedAt = runproof.Timestamp(e.now())
	r.ID = e.newID()
	if err := e.store.CreateExport(ctx, r.ExportRequest); err != nil {
		return r, err
	}
	return r, e.startLease(ctx, r.TenantID, r.ID)
}

// count counts an export ended as kind (Stats).
func (e *Exporter) count(kind string) {
	if kind == runproof.ExportEventCompleted {
		e.completed.Add(1)
	} else {
		e.failed.Add(1)
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

// OutcomeWait is how long an export's outcome is still written once its
// server began to stop and its request was cut: within the few seconds a
// stopping server gives its requests to answer.
const OutcomeWait = 3 * time.Second

// outcomeContext returns the context an export's outcome is recorded in:
// ctx's values, not its end, but for a cut (ctx done once the Exporter
// drains, as its process stops): then it ends OutcomeWait after both.
func (e *Exporter) outcomeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		select {
		case <-e.draining:
			time.AfterFunc(OutcomeWait, cancel)
		case <-out.Done():
		}
	})
	return out, func() { stop(); cancel() }
}

// errEndedMeanwhile is the error of an export whose end was recorded by
// another while it was made: Interrupt, as the process stopped, or
// Recover, in a process that found its lease run out (this one stalled).
var errEndedMeanwhile = errors.New("its end was recorded meanwhile: the process stopped, or stalled past its lease")

// interrupted is the failure reason of an export whose request was
// cancelled.
const interrupted = "it was interrupted: the request was cancelled or the process stopped before it was done"

// end records how a recorded export ended: ev (completed) or, after
// buildErr, failed, saying reason or else why buildErr stopped it; then
// appends it to the ledger.
func (e *Exporter) end(ctx context.Context, r request, ev runproof.ExportEvent, buildErr error, reason string) (runproof.Export, error) {
	if buildErr != nil {
		e.log.WarnContext(ctx, "export failed", slog.String("tenant_id", r.TenantID), slog.String("export_id", r.ID), slog.Any("error", buildErr))
		switch {
		case reason != "":
		case errors.Is(buildErr, context.Canceled) && ctx.Err() != nil:
			reason = interrupted
		default:
			reason = runproof.ErrorMessage(buildErr)
		}
		ev = runproof.ExportEvent{Kind: runproof.ExportEventFailed, Reason: reason}
	}
	ev.TenantID, ev.ExportID, ev.At = r.TenantID, r.ID, runproof.Timestamp(e.now())
	// The outcome is recorded even when the caller has gone, and once a
	// database that went away for a while is back, while the caller waits:
	// one who has gone, or a server that stops, tries once, and the export
	// then stays pending until Recover. A server that stops gives that try
	// OutcomeWait: a database that hangs would hold the answer past the
	// stop.
	octx, cancel := e.outcomeContext(ctx)
	defer cancel()
	err := runproof.RetryUnavailable(ctx, e.backoff, func() error { return e.store.AppendExportEvent(octx, ev) })
	owner := endOther
	if runproof.ErrorCode(err) == runproof.ECONFLICT {
		owner = e.ownEnd(octx, ev)
	}
	switch {
	case err == nil:
	case runproof.ErrorCode(err) == runproof.EUNAVAILABLE && ctx.Err() == nil && e.later(r.ExportRequest, ev):
		// A database full or away for longer takes the outcome later,
		// from the export's lease, while this process runs.
		return runproof.Export{}, fmt.Errorf("export %s: its outcome is not recorded yet: %w", r.ID, err)
	case owner == endOwn:
		// A try reported failed (a timeout, a connection lost) was
		// committed all the same.
	case owner == endUnknown:
		// Ended, by this export or by another process: the artifact,
		// which may be the export's, is kept.
		return runproof.Export{}, fmt.Errorf("export %s: record outcome: %w", r.ID, err)
	case runproof.ErrorCode(err) == runproof.ECONFLICT:
		err = fmt.Errorf("%w: %w", errEndedMeanwhile, err)
		e.log.WarnContext(ctx, "export ended meanwhile", slog.String("tenant_id", r.TenantID), slog.String("export_id", r.ID), slog.Any("error", err))
		err = errors.Join(err, e.dropOrphan(r.ExportRequest, ev))
		return runproof.Export{}, fmt.Errorf("export %s: record outcome: %w", r.ID, err)
	default:
		return runproof.Export{}, fmt.Errorf("export %s: record outcome: %w", r.ID, err)
	}
	e.count(ev.Kind)
	rec := e.ended(octx, r.ExportRequest, ev, e.backoff)
	if buildErr != nil {
		return rec, &Failed{Export: rec, Err: buildErr}
	}
	return rec, nil
}

// ended reads back an export whose end ev is stored, trying again while
// the database is away (waits), and appends it to the ledger. Unread, the
// export is told from what was written (a ZIP's without its seal, which a
// later read shows), and enters the ledger from the store once it can be
// read (Sync, before the tenant's next export or at the next recovery).
func (e *Exporter) ended(ctx context.Context, r runproof.ExportRequest, ev runproof.ExportEvent, waits []time.Duration) runproof.Export {
	var rec runproof.Export
	err := runproof.RetryUnavailable(ctx, waits, func() (err error) { rec, err = e.store.GetExport(ctx, r.TenantID, r.ID); return err })
	if err != nil {
		e.log.WarnContext(ctx, "export finished, not read back: it enters the ledger later", slog.String("tenant_id", r.TenantID),
			slog.String("export_id", r.ID), slog.Any("error", err))
		e.unsynced.Store(r.TenantID, true)
		return runproof.FoldExport(r, []runproof.ExportEvent{ev})
	}
	e.appendToLedger(ctx, rec)
	return rec
}

// dropOrphan removes the artifact of an export whose end, completed, was
// refused because another recorded it first: the artifact is no one's.
func (e *Exporter) dropOrphan(r runproof.ExportRequest, ev runproof.ExportEvent) error {
	if ev.Kind != runproof.ExportEventCompleted {
		return nil
	}
	return e.artifacts.Remove(artifactKey(r))
}

// endOwner says who wrote the end stored for an export (ownEnd): this
// export's earlier try, or another writer.
type endOwner int

const (
	endOther   endOwner = iota // another's: the export ended otherwise
	endOwn                     // this end itself, written by an earlier try
	endUnknown                 // the store could not say
)

// ownEnd says whose the stored end of an export is, when its end ev was
// refused as a second one: ev itself, from an earlier try reported
// failed but committed all the same, or another's.
func (e *Exporter) ownEnd(ctx context.Context, ev runproof.ExportEvent) endOwner {
	rec, err := e.store.GetExport(ctx, ev.TenantID, ev.ExportID)
	switch {
	case err != nil:
		return endUnknown
	case ev.Kind == runproof.ExportEventCompleted && rec.Status == runproof.ExportCompleted && rec.Checksum == ev.Checksum,
		ev.Kind == runproof.ExportEventFailed && rec.Status == runproof.ExportFailed && rec.FailureReason == ev.Reason:
		return endOwn
	}
	return endOther
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
		e.log.ErrorContext(ctx, "export not recorded in the ledger yet; it will be before the tenant's next export here, or within 30 s by a running server",
			slog.String("export_id", rec.ID), slog.Any("error", err))
		e.unsynced.Store(rec.TenantID, true)
	}
}

// artifactKey names an export's artifact in the artifact store.
func artifactKey(r runproof.ExportRequest) string {
	return r.TenantID + "/" + r.ID + "." + string(r.Format)
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
		why := ""
		if f.Export.FailureReason != interrupted {
			why = " (" + f.Export.FailureReason + ")"
		}
		return runproof.Errorf(runproof.EUNAVAILABLE, "export %s was interrupted and is recorded as failed%s: ask again", f.Export.ID, why)
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
	return runproof.ExportEvent{Kind: runproof.ExportEventCompleted, Checksum: runproof.DigestOf(h),
		SizeBytes: w.n, BundleID: bundleID, Artifact: key, Steps: &steps, Remediation: src.Remediation(), RemediationNotesDigest: src.RemediationNotesDigest(), StepsOmitted: &omitted}, nil
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
	if err := checkArtifact(rec, f); err != nil {
		f.Close()
		if runproof.ErrorCode(err) == runproof.ECONFLICT { // changed behind runproof's back
			e.log.ErrorContext(ctx, "export artifact damaged", slog.String("export_id", rec.ID), slog.Any("error", err))
		}
		return rec, nil, err
	}
	return rec, f, nil
}

// checkArtifact reads an export's artifact through and compares its size
// and sha256 with those recorded when it was made, leaving it at its
// start: a file damaged or replaced on disk is not served as the export.
func checkArtifact(rec runproof.Export, f io.ReadSeeker) error {
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read the artifact of export %s: %w", rec.ID, err)
	}
	if sum := runproof.DigestOf(h); n != rec.SizeBytes || sum != rec.Checksum {
		return runproof.Errorf(runproof.ECONFLICT, "the artifact of export %s is damaged: it has %d bytes of %s, "+
			"not the %d bytes of %s recorded when it was made; export again", rec.ID, n, sum, rec.SizeBytes, rec.Checksum)
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
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
