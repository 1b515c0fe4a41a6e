package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// ids returns a deterministic id source.
func ids(prefix int) func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("00000000-0000-7000-%04d-%012d", prefix, n) }
}

// fixed is the clock of the exports under test.
var fixed = time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)

// seeded returns a store holding the demo data set and its showcase
// incident.
func seeded(t *testing.T, store runproof.Store) runproof.Incident {
	t.Helper()
	res, err := demo.Seed(context.Background(), demo.Options{Store: store, NewID: ids(1),
		Day: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return res.Showcase
}

func newExporter(t *testing.T, store runproof.Store, arts export.Artifacts) *export.Exporter {
	t.Helper()
	if arts == nil {
		arts, _ = tempArtifacts(t)
	}
	return export.New(store, arts, export.Options{NewID: ids(2), Now: func() time.Time { return fixed }})
}

// tempArtifacts returns an artifact directory of the test's, and its root.
func tempArtifacts(t *testing.T) (*artifact.Dir, string) {
	t.Helper()
	root := t.TempDir()
	dir, err := artifact.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return dir, root
}

// seededExporter returns a SQLite store holding the demo data, its
// showcase incident, and an exporter over it.
func seededExporter(t *testing.T) (runproof.Store, runproof.Incident, *export.Exporter) {
	t.Helper()
	store := storetest.OpenSQLite(t)
	inc := seeded(t, store)
	return store, inc, newExporter(t, store, nil)
}

var auditor = export.Requester{ID: "key_auditor", Origin: runproof.OriginHuman, SourceComponent: "api", CorrelationID: "corr-1", Name: "Grace Hopper"}

func download(t *testing.T, e *export.Exporter, rec runproof.Export) []byte {
	t.Helper()
	_, art, err := e.Open(context.Background(), rec.TenantID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer art.Close()
	b, err := io.ReadAll(art)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden exports the three bundles of the demo's showcase incident in
// every format through the exporter, on both engines, and compares them
// with the same golden files: the bytes are identical on SQLite and
// PostgreSQL.
func TestGolden(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		e := newExporter(t, store, nil)
		for _, bundle := range []runproof.BundleType{runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief} {
			for _, format := range []runproof.ExportFormat{runproof.FormatJSON, runproof.FormatCSV} {
				rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, BundleType: bundle, Format: format,
					ExportReason: "golden", PreparedFor: "Board", IncludeContent: true})
				if err != nil {
					t.Fatal(err)
				}
				got := download(t, e, rec)
				if rec.Checksum != runproof.DigestBytes(got) || rec.SizeBytes != int64(len(got)) {
					t.Errorf("%s %s: record says %s (%d bytes), artifact is %s (%d bytes)", bundle, format,
						rec.Checksum, rec.SizeBytes, runproof.DigestBytes(got), len(got))
				}
				if format == runproof.FormatJSON {
					if err := evidencetest.VerifyContentHash(got); err != nil {
						t.Errorf("%s: %v", bundle, err)
					}
				}
				golden(t, string(bundle)+"."+string(format), got)
			}
		}
	})
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/export -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./internal/export -update rewrites it)\n got %.400s", name, got)
	}
}

// TestRecord checks every field of the record and its lifecycle.
func TestRecord(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		e := newExporter(t, store, nil)
		rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{RunID: inc.RunID, BundleType: runproof.BundleSOC2,
			Format: runproof.FormatCSV, ExportReason: "Q4 audit"})
		if err != nil {
			t.Fatal(err)
		}
		want := runproof.ExportRequest{ID: rec.ID, TenantID: demo.Tenant, Scope: runproof.ScopeLLMRun, BundleType: runproof.BundleSOC2,
			RunID: inc.RunID, IncidentID: inc.ID, Format: runproof.FormatCSV, RequestedBy: "key_auditor", Origin: runproof.OriginHuman,
			SourceComponent: "api", CorrelationID: "corr-1", ExportReason: "Q4 audit", CreatedAt: fixed}
		if fmt.Sprint(rec.ExportRequest) != fmt.Sprint(want) {
			t.Errorf("request\n got %+v\nwant %+v", rec.ExportRequest, want)
		}
		if rec.Status != runproof.ExportCompleted || rec.CompletedAt == nil || rec.BundleID == "" || rec.DeliveredAt != nil {
			t.Fatalf("record %+v", rec)
		}
		download(t, e, rec)
		if err := e.Delivered(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := e.Delivered(ctx, rec); err != nil { // the caller's copy is stale: still one delivery
			t.Fatal(err)
		}
		got, err := e.Get(ctx, demo.Tenant, rec.ID)
		if err != nil || got.DeliveredAt == nil || got.Status != runproof.ExportCompleted {
			t.Fatalf("after download: %+v, %v", got, err)
		}
		if _, err := e.Get(ctx, "other-tenant", rec.ID); runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Errorf("other tenant: %v", err)
		}
	})
}

// TestBadRequests checks the errors a user gets, with the field at fault.
func TestBadRequests(t *testing.T) {
	_, inc, e := seededExporter(t)
	ctx := context.Background()
	clean := "demo-run-001" // completed without an incident
	for _, tc := range []struct {
		name  string
		in    export.Input
		code  string
		field string
	}{
		{"unknown bundle", export.Input{IncidentID: inc.ID, BundleType: "pdf_report", Format: "json"}, runproof.EINVALID, "bundle_type"},
		{"no format", export.Input{IncidentID: inc.ID}, runproof.EINVALID, "format"},
		{"unknown format", export.Input{IncidentID: inc.ID, Format: "xml"}, runproof.EINVALID, "format"},
		{"unknown classification", export.Input{IncidentID: inc.ID, Format: "json", Classification: "SECRET"}, runproof.EINVALID, "classification"},
		{"nothing to export", export.Input{Format: "json"}, runproof.EINVALID, "run_id"},
		{"a compliance period alone", export.Input{Scope: runproof.ScopeCompliance, BundleType: "soc2", Format: "json",
			PeriodStart: "2026-01-01T00:00:00Z", PeriodEnd: "2026-04-01T00:00:00Z"}, runproof.EINVALID, "run_id"},
		{"the audit log", export.Input{Scope: runproof.ScopeAudit, Format: "json"}, runproof.EINVALID, "scope"},
		{"prepared_by not text", export.Input{IncidentID: inc.ID, Format: "json", PreparedBy: "Ada\x00"}, runproof.EINVALID, "prepared_by"},
		{"bad period", export.Input{IncidentID: inc.ID, BundleType: "soc2", Format: "json", PeriodStart: "yesterday"}, runproof.EINVALID, "period_start"},
		{"period of a mistyped year", export.Input{IncidentID: inc.ID, BundleType: "soc2", Format: "json", PeriodStart: "0001-01-01T00:00:00Z"}, runproof.EINVALID, "period_start"},
		{"reversed period", export.Input{IncidentID: inc.ID, BundleType: "soc2", Format: "json", PeriodStart: "2026-11-23T00:00:00Z", PeriodEnd: "2026-11-22T00:00:00Z"}, runproof.EINVALID, "period_end"},
		{"period of an evidence bundle", export.Input{IncidentID: inc.ID, Format: "json", PeriodEnd: "2999-01-01T00:00:00Z"}, runproof.EINVALID, "period_end"},
		{"compliance scope of an evidence bundle", export.Input{IncidentID: inc.ID, Format: "json", Scope: runproof.ScopeCompliance}, runproof.EINVALID, "scope"},
		{"SOC 2 period starting after the incident", export.Input{IncidentID: inc.ID, BundleType: "soc2", Format: "json",
			PeriodStart: "2999-01-01T00:00:00Z"}, runproof.EINVALID, "period_start"},
		{"SOC 2 period ending before the incident", export.Input{RunID: inc.RunID, BundleType: "soc2", Format: "json",
			PeriodEnd: "2000-01-01T00:00:00Z"}, runproof.EINVALID, "period_end"},
		{"debrief without incident", export.Input{RunID: clean, BundleType: "executive_debrief", Format: "json"}, runproof.EINVALID, "run_id"},
		{"run of another incident", export.Input{RunID: clean, IncidentID: inc.ID, Format: "json"}, runproof.EINVALID, "run_id"},
		{"unknown run", export.Input{RunID: "nope", Format: "json"}, runproof.EINVALID, "run_id"},
		{"incident of another tenant", export.Input{IncidentID: inc.ID, Format: "json", Scope: runproof.ScopeLLMRun}, runproof.EINVALID, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tenant := demo.Tenant
			if tc.field == "other" {
				tenant, tc.field = "other-tenant", "incident_id"
			}
			_, err := e.Export(ctx, tenant, auditor, tc.in)
			if runproof.ErrorCode(err) != tc.code {
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
			if tc.field != "" {
				fields := runproof.ErrorFields(err)
				if len(fields) == 0 || fields[0].Field != tc.field {
					t.Fatalf("fields %+v, want %s", fields, tc.field)
				}
				if tc.in.Scope == runproof.ScopeAudit || tc.in.Scope == runproof.ScopeCompliance && tc.in.IncidentID == "" && tc.in.RunID == "" {
					if m := fields[0].Message; !strings.Contains(m, "not available yet") {
						t.Errorf("%s: %q does not say what is not available yet", tc.field, m)
					}
				}
			}
		})
	}
	recs, err := e.List(ctx, runproof.ListExportsParams{TenantID: demo.Tenant, Limit: 100})
	if err != nil || len(recs) != 0 {
		t.Fatalf("rejected requests left records: %+v, %v", recs, err)
	}
}

// failingArtifacts writes through to a real directory but fails after
// limit bytes, as a full disk would.
type failingArtifacts struct {
	*artifact.Dir
	limit int
}

func (f failingArtifacts) Create(key string) (artifact.Pending, error) {
	p, err := f.Dir.Create(key)
	if err != nil {
		return nil, err
	}
	return &failingPending{Pending: p, left: f.limit}, nil
}

type failingPending struct {
	artifact.Pending
	left int
}

var errDiskFull = errors.New("no space left on device")

func (p *failingPending) Write(b []byte) (int, error) {
	if len(b) > p.left {
		n, _ := p.Pending.Write(b[:p.left])
		p.left = 0
		return n, errDiskFull
	}
	p.left -= len(b)
	return p.Pending.Write(b)
}

// TestDamagedArtifact: an artifact changed or cut short on disk after its
// export is refused, not served as the export; the untouched one opens.
func TestDamagedArtifact(t *testing.T) {
	store := storetest.OpenSQLite(t)
	inc := seeded(t, store)
	arts, root := tempArtifacts(t)
	e := newExporter(t, store, arts)
	ctx := context.Background()
	rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	good := download(t, e, rec)
	path := filepath.Join(root, filepath.FromSlash(rec.Artifact))
	for name, damaged := range map[string][]byte{
		"a byte changed": append([]byte{good[0] ^ 1}, good[1:]...),
		"cut short":      good[:len(good)/2],
	} {
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		_, f, err := e.Open(ctx, demo.Tenant, rec.ID)
		if f != nil {
			f.Close()
		}
		if runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(err.Error(), "is damaged") {
			t.Errorf("%s: %v, want a conflict saying it is damaged", name, err)
		}
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if b := download(t, e, rec); !bytes.Equal(b, good) {
		t.Error("the artifact restored does not download as it was")
	}
}

// TestFailedExport: a write that fails mid-way leaves a failed record and
// no artifact, on both engines.
func TestFailedExport(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		dir, root := tempArtifacts(t)
		e := newExporter(t, store, failingArtifacts{Dir: dir, limit: 100})
		rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
		var failed *export.Failed
		if !errors.As(err, &failed) || !errors.Is(err, errDiskFull) {
			t.Fatalf("error %v, want a failed export", err)
		}
		if rec.Status != runproof.ExportFailed || rec.FailureReason == "" || rec.Checksum != "" || rec.CompletedAt == nil {
			t.Fatalf("record %+v", rec)
		}
		stored, err := e.Get(ctx, demo.Tenant, rec.ID)
		if err != nil || stored.Status != runproof.ExportFailed {
			t.Fatalf("stored %+v, %v", stored, err)
		}
		if _, _, err := e.Open(ctx, demo.Tenant, rec.ID); runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Errorf("download of a failed export: %v", err)
		}
		if files := filesUnder(t, root); len(files) != 0 {
			t.Errorf("a failed export left files: %v", files)
		}
	})
}

// filesUnder lists the files below root.
func filesUnder(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// cancellingArtifacts cancels the export's context when its artifact is
// created, as a client that goes away or a Ctrl-C does.
type cancellingArtifacts struct {
	*artifact.Dir
	cancel context.CancelFunc
}

func (c cancellingArtifacts) Create(key string) (artifact.Pending, error) {
	c.cancel()
	return nil, context.Canceled
}

// TestInterruptedExport: an export whose caller cancels it is recorded as
// failed because it was interrupted, not with an internal error.
func TestInterruptedExport(t *testing.T) {
	store := storetest.OpenSQLite(t)
	inc := seeded(t, store)
	dir, _ := tempArtifacts(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := newExporter(t, store, cancellingArtifacts{Dir: dir, cancel: cancel})
	rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
	if err == nil || rec.Status != runproof.ExportFailed || !strings.Contains(rec.FailureReason, "interrupted") {
		t.Fatalf("record %+v, error %v", rec, err)
	}
	// Said once, to whoever asked.
	var failed *export.Failed
	if !errors.As(err, &failed) {
		t.Fatalf("error %T %v", err, err)
	}
	if msg := failed.UserError().Message; msg != "export "+rec.ID+" was interrupted and is recorded as failed: ask again" {
		t.Errorf("message %q", msg)
	}
}

// awayOutcomes is a store that cannot be reached when an export's outcome
// is recorded, and counts the tries.
type awayOutcomes struct {
	runproof.Store
	tries int
}

func (a *awayOutcomes) AppendExportEvent(ctx context.Context, ev runproof.ExportEvent) error {
	if ev.Kind == runproof.ExportEventFailed || ev.Kind == runproof.ExportEventCompleted {
		a.tries++
		return runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")
	}
	return a.Store.AppendExportEvent(ctx, ev)
}

// TestInterruptedExportDatabaseAway: an export cut while the database is
// away tries once to record its outcome, and answers at once that it is
// unavailable, rather than waiting for the database that its caller, or a
// stopping server, has no time left for.
func TestInterruptedExportDatabaseAway(t *testing.T) {
	s := storetest.OpenSQLite(t)
	inc := seeded(t, s)
	store := &awayOutcomes{Store: s}
	dir, _ := tempArtifacts(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := newExporter(t, store, cancellingArtifacts{Dir: dir, cancel: cancel})
	_, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
	if runproof.ErrorCode(err) != runproof.EUNAVAILABLE || store.tries != 1 {
		t.Fatalf("error %v (%s), %d tries to record the outcome; want one, unavailable", err, runproof.ErrorCode(err), store.tries)
	}
}

// hangingOutcomes is a store that hangs when an export's outcome is
// recorded, until the context it is given ends.
type hangingOutcomes struct{ runproof.Store }

func (h hangingOutcomes) AppendExportEvent(ctx context.Context, ev runproof.ExportEvent) error {
	if ev.Kind == runproof.ExportEventFailed || ev.Kind == runproof.ExportEventCompleted {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Store.AppendExportEvent(ctx, ev)
}

// TestInterruptedExportDatabaseHangs: an export cut as its server stops
// (the Exporter drained) while the database hangs gives up recording its
// outcome OutcomeWait after, and answers, within the stop a server gives
// its requests, rather than never.
func TestInterruptedExportDatabaseHangs(t *testing.T) {
	s := storetest.OpenSQLite(t)
	inc := seeded(t, s)
	dir, _ := tempArtifacts(t)
	ctx, cancel := context.WithCancel(context.Background())
	var e *export.Exporter
	cut := func() { e.Drain(); cancel() }
	e = newExporter(t, hangingOutcomes{Store: s}, cancellingArtifacts{Dir: dir, cancel: cut})
	done := make(chan error, 1)
	go func() {
		_, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want the cut's", err)
		}
	case <-time.After(export.OutcomeWait + time.Minute): // a liveness bound, not a speed target
		t.Fatal("no answer: the export waits for the database that hangs")
	}
}

// busyOutcomes is a healthy database whose writer is busy for a while (a
// seal batch, a large ingest) when a completed export's outcome is
// written, and the export's caller hangs up meanwhile.
type busyOutcomes struct {
	runproof.Store
	hangUp context.CancelFunc
	busy   time.Duration
}

func (b busyOutcomes) AppendExportEvent(ctx context.Context, ev runproof.ExportEvent) error {
	if ev.Kind == runproof.ExportEventCompleted {
		b.hangUp()
		select {
		case <-time.After(b.busy):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Store.AppendExportEvent(ctx, ev)
}

// TestHungUpExportCompletes: an export whose caller hangs up while its
// outcome waits for a busy database, longer than OutcomeWait, is recorded
// completed all the same: the bound is for a server that stops.
func TestHungUpExportCompletes(t *testing.T) {
	s := storetest.OpenSQLite(t)
	inc := seeded(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	e := newExporter(t, busyOutcomes{Store: s, hangUp: cancel, busy: export.OutcomeWait + time.Second}, nil)
	if _, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.ListExports(context.Background(), runproof.ListExportsParams{TenantID: demo.Tenant, Limit: 1})
	if err != nil || len(recs) != 1 || recs[0].Status != runproof.ExportCompleted {
		t.Errorf("record %+v, %v; want completed", recs, err)
	}
}

// blockingArtifacts holds exports in Create until release is closed;
// entered is closed when the first one gets there.
type blockingArtifacts struct {
	*artifact.Dir
	entered, release chan struct{}
	once             *sync.Once
}

func newBlocking(dir *artifact.Dir) blockingArtifacts {
	return blockingArtifacts{Dir: dir, entered: make(chan struct{}), release: make(chan struct{}), once: &sync.Once{}}
}

func (b blockingArtifacts) Create(key string) (artifact.Pending, error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.Dir.Create(key)
}

// TestInterrupt: a process that stops while an export is being made
// records it as interrupted at once; the export's own end, after, is
// refused, and the record stays failed.
func TestInterrupt(t *testing.T) {
	store := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, store)
	dir, root := tempArtifacts(t)
	arts := newBlocking(dir)
	e := newExporter(t, store, arts)
	done := make(chan error, 1)
	go func() {
		_, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
		done <- err
	}()
	<-arts.entered
	if n := e.Making(); n != 1 {
		t.Errorf("Making = %d while one export is made", n)
	}
	if n := e.Interrupt(ctx); n != 1 {
		t.Errorf("Interrupt recorded %d exports, want 1", n)
	}
	close(arts.release)
	if err := <-done; err == nil {
		t.Error("the export ended as completed after it was recorded as interrupted")
	}
	recs, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: demo.Tenant, Limit: 1})
	if err != nil || recs[0].Status != runproof.ExportFailed || !strings.Contains(recs[0].FailureReason, "interrupted") {
		t.Fatalf("record %+v, %v", recs, err)
	}
	if n := e.Interrupt(ctx); n != 0 {
		t.Errorf("Interrupt with nothing being made recorded %d", n)
	}
	if n := e.Making(); n != 0 {
		t.Errorf("Making = %d once the export ended", n)
	}
	// The artifact it went on to write is removed.
	if files := filesUnder(t, root); len(files) != 0 {
		t.Errorf("the interrupted export left files: %v", files)
	}
}

// TestTurns: exports past Concurrent wait for their turn; one whose
// request ends while it waits is not started and leaves no record; one
// that gets its turn is created then, not when it was asked for (Recover
// takes an export an hour old for abandoned).
func TestTurns(t *testing.T) {
	store := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, store)
	dir, _ := tempArtifacts(t)
	var clock atomic.Int64
	clock.Store(fixed.UnixNano())
	arts := newBlocking(dir)
	e := export.New(store, arts, export.Options{Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }, Concurrent: 1})
	in := export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON}
	first := make(chan error, 1)
	go func() {
		_, err := e.Export(ctx, demo.Tenant, auditor, in)
		first <- err
	}()
	<-arts.entered
	before, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: demo.Tenant})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second) // long enough for its checks on a loaded machine
	defer cancel()
	_, err = e.Export(wctx, demo.Tenant, auditor, in)
	if runproof.ErrorCode(err) != runproof.EUNAVAILABLE {
		t.Errorf("an export past the one allowed, given up: %v, want %s", err, runproof.EUNAVAILABLE)
	}
	if after, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: demo.Tenant}); err != nil || len(after) != len(before) {
		t.Errorf("the export given up left a record: %d records, were %d (%v)", len(after), len(before), err)
	}

	// One that waits for its turn two hours is created two hours later.
	second := make(chan runproof.Export, 1)
	go func() {
		rec, err := e.Export(ctx, demo.Tenant, auditor, in)
		if err != nil {
			t.Error(err)
		}
		second <- rec
	}()
	time.Sleep(100 * time.Millisecond) // past its checks, waiting
	clock.Add(int64(2 * time.Hour))
	close(arts.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if rec := <-second; !rec.CreatedAt.Equal(fixed.Add(2 * time.Hour)) {
		t.Errorf("the export that waited was created at %s, want when its turn came, %s", rec.CreatedAt, fixed.Add(2*time.Hour))
	}
}

func TestDebriefClassification(t *testing.T) {
	_, inc, e := seededExporter(t)
	rec, err := e.Export(context.Background(), demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON,
		BundleType: runproof.BundleExecutiveDebrief, Classification: "PUBLIC"})
	if err != nil {
		t.Fatal(err)
	}
	if b := download(t, e, rec); !bytes.Contains(b, []byte(`"classification":"PUBLIC"`)) {
		t.Errorf("debrief %s", b)
	}
}

// TestPeriod: a SOC 2 period given by one end takes the other from the
// incident's UTC day; a period that does not hold the incident's detection
// is refused, naming the end at fault.
func TestPeriod(t *testing.T) {
	_, inc, e := seededExporter(t)
	ctx := context.Background()
	dayStart, dayEnd := evidence.CompliancePeriod(inc.DetectedAt, nil, nil)
	start := runproof.Timestamp(dayStart.Add(inc.DetectedAt.Sub(dayStart) / 2))
	rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, BundleType: "soc2", Format: "json",
		PeriodStart: start.Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	b := soc2Of(t, e, rec)
	if b.CompliancePeriodStart != runproof.FormatTime(start) || b.CompliancePeriodEnd != runproof.FormatTime(dayEnd) {
		t.Errorf("period %s – %s, want %s – %s", b.CompliancePeriodStart, b.CompliancePeriodEnd, runproof.FormatTime(start), runproof.FormatTime(dayEnd))
	}

	at := func(d time.Duration) string { return inc.DetectedAt.Add(d).Format(time.RFC3339Nano) }
	for _, c := range []struct {
		start, end, field string
	}{
		{"2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "period_end"},
		{at(time.Second), "", "period_start"},
		{at(time.Second), at(time.Hour), "period_start"},
		{"", at(0), "period_end"},
		{"", at(-time.Second), "period_end"},
	} {
		_, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, BundleType: "soc2", Format: "json",
			PeriodStart: c.start, PeriodEnd: c.end})
		var fe *runproof.Error
		if !errors.As(err, &fe) || len(fe.Fields) != 1 || fe.Fields[0].Field != c.field {
			t.Errorf("period %q – %q: %v, want a bad %s", c.start, c.end, err, c.field)
		}
	}
	// At the detection itself, it holds.
	if _, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, BundleType: "soc2", Format: "json",
		PeriodStart: at(0), PeriodEnd: at(time.Microsecond)}); err != nil {
		t.Errorf("a period from the detection on: %v", err)
	}
}

// TestPeriodWithoutIncident: the SOC 2 bundle of a run without incident
// attests a period only when asked; one end given takes the other from the
// run start's UTC day, and the period must hold the run's start. A
// compliance export of such a run must give its period.
func TestPeriodWithoutIncident(t *testing.T) {
	store, _, e := seededExporter(t)
	ctx := context.Background()
	runs, err := store.ListRuns(ctx, runproof.ListRunsParams{TenantID: demo.Tenant, Status: runproof.RunCompleted, Limit: 1})
	if err != nil || len(runs) != 1 || runs[0].IncidentID != "" {
		t.Fatalf("no completed run without incident: %v %v", runs, err)
	}
	run := runs[0]
	soc2 := func(in export.Input) (evidence.SOC2Bundle, error) {
		in.RunID, in.BundleType, in.Format = run.ID, runproof.BundleSOC2, runproof.FormatJSON
		rec, err := e.Export(ctx, demo.Tenant, auditor, in)
		if err != nil {
			return evidence.SOC2Bundle{}, err
		}
		return soc2Of(t, e, rec), nil
	}
	if b, err := soc2(export.Input{}); err != nil || b.CompliancePeriodStart != "" || b.CompliancePeriodEnd != "" {
		t.Errorf("no period asked: %q – %q, %v; want none", b.CompliancePeriodStart, b.CompliancePeriodEnd, err)
	}
	_, dayEnd := evidence.CompliancePeriod(run.StartedAt, nil, nil)
	start := run.StartedAt.Add(-time.Hour)
	b, err := soc2(export.Input{PeriodStart: start.Format(time.RFC3339Nano)})
	if err != nil || b.CompliancePeriodStart != runproof.FormatTime(start) || b.CompliancePeriodEnd != runproof.FormatTime(dayEnd) {
		t.Errorf("period_start only: %q – %q, %v; want %s – %s", b.CompliancePeriodStart, b.CompliancePeriodEnd, err,
			runproof.FormatTime(start), runproof.FormatTime(dayEnd))
	}
	at := func(d time.Duration) string { return run.StartedAt.Add(d).Format(time.RFC3339Nano) }
	for _, c := range []struct {
		in    export.Input
		field string
	}{
		{export.Input{PeriodStart: "2020-01-01T00:00:00Z", PeriodEnd: "2020-01-02T00:00:00Z"}, "period_end"},
		{export.Input{PeriodStart: at(time.Second)}, "period_start"},
		{export.Input{PeriodEnd: at(0)}, "period_end"},
		{export.Input{Scope: runproof.ScopeCompliance}, "period_start"},
	} {
		_, err := soc2(c.in)
		var fe *runproof.Error
		if !errors.As(err, &fe) || len(fe.Fields) != 1 || fe.Fields[0].Field != c.field {
			t.Errorf("%+v: %v, want a bad %s", c.in, err, c.field)
		}
	}
	if _, err := soc2(export.Input{Scope: runproof.ScopeCompliance, PeriodEnd: at(time.Hour)}); err != nil {
		t.Errorf("a compliance export with its period: %v", err)
	}
}

// TestPreparedBy: a debrief is prepared by the name given, else the
// requester's name, else "system".
func TestPreparedBy(t *testing.T) {
	_, inc, e := seededExporter(t)
	ctx := context.Background()
	anonymous := auditor
	anonymous.Name = ""
	for _, c := range []struct {
		who         export.Requester
		given, want string
	}{{auditor, "Ada Lovelace", "Ada Lovelace"}, {auditor, "", "Grace Hopper"}, {anonymous, "", "system"}} {
		rec, err := e.Export(ctx, demo.Tenant, c.who, export.Input{IncidentID: inc.ID, BundleType: runproof.BundleExecutiveDebrief,
			Format: runproof.FormatJSON, PreparedBy: c.given})
		if err != nil {
			t.Fatal(err)
		}
		var b evidence.ExecutiveDebriefBundle
		if err := json.Unmarshal(download(t, e, rec), &b); err != nil {
			t.Fatal(err)
		}
		if b.PreparedBy != c.want {
			t.Errorf("prepared_by %q, want %q", b.PreparedBy, c.want)
		}
	}
}
