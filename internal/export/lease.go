package export

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// A lease is the renewal of one export's lease while this process makes
// it (keepLease), from its record to its end, or, when its end could not
// be written, until it is (later).
type lease struct {
	tenantID string
	stop     context.CancelFunc
	done     chan struct{}               // closed once the renewals have stopped
	late     atomic.Bool                 // its end is written late, by the lease (outcome)
	outcome  atomic.Pointer[lateOutcome] // that end, while no one is writing it
}

// A lateOutcome is the end of an export that the database did not take
// when it was made: full, or away.
type lateOutcome struct {
	req runproof.ExportRequest
	ev  runproof.ExportEvent
}

// startLease writes the lease of an export just recorded, before the
// export is answered, so that one a client was told of is ended soon
// after its process dies, however soon that is; then it renews the lease
// in the background and keeps the export among those being made until
// release. When the lease cannot be written, the export is not made (nor
// answered): Recover ends it, AbandonedAfter after its request.
func (e *Exporter) startLease(ctx context.Context, tenantID, exportID string) error {
	// Bounded by the caller's context (the export's check), not by the
	// renewal period, which a renewal that hangs gives way to the next in.
	if err := e.store.LeaseExport(ctx, tenantID, exportID, e.now().Add(LeaseFor)); err != nil {
		return fmt.Errorf("export %s: lease: %w", exportID, err)
	}
	bg, stop := context.WithCancel(context.Background())
	l := &lease{tenantID: tenantID, stop: stop, done: make(chan struct{})}
	e.making.Store(exportID, l)
	go func() {
		defer close(l.done)
		e.keepLease(bg, l, exportID)
	}()
	return nil
}

// keepLease renews the export's lease every e.renewal until ctx ends.
// Once the export has a late outcome, each renewal first tries to write
// it, and the renewals stop once the export has ended (settle).
func (e *Exporter) keepLease(ctx context.Context, l *lease, exportID string) {
	t := time.NewTicker(e.renewal)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if e.settle(ctx, l) {
			e.making.Delete(exportID)
			return
		}
		if err := e.writeLease(ctx, l.tenantID, exportID); err != nil && ctx.Err() == nil {
			// The next renewal may succeed before the lease runs out.
			e.log.WarnContext(ctx, "export lease not renewed", slog.String("export_id", exportID), slog.Any("error", err))
		}
	}
}

// writeLease renews the export's lease, to run out LeaseFor from now. One
// that hangs gives way to the next.
func (e *Exporter) writeLease(ctx context.Context, tenantID, exportID string) error {
	rctx, cancel := context.WithTimeout(ctx, e.renewal)
	defer cancel()
	return e.store.LeaseExport(rctx, tenantID, exportID, e.now().Add(LeaseFor))
}

// later keeps an export's end that the database did not take, for its
// lease to write once it does (instead of leaving the export pending for
// Recover, which would take it for interrupted): false when the export is
// not among those this process makes.
func (e *Exporter) later(r runproof.ExportRequest, ev runproof.ExportEvent) bool {
	v, ok := e.making.Load(r.ID)
	if ok {
		l := v.(*lease)
		l.outcome.Store(&lateOutcome{req: r, ev: ev})
		l.late.Store(true)
	}
	return ok
}

// settle writes the late outcome of an export, if it has one and no one
// else is writing it, and reports whether the export has ended (writeLate).
func (e *Exporter) settle(ctx context.Context, l *lease) bool {
	late := l.outcome.Swap(nil) // taken: written once, by one
	if late == nil {
		return false
	}
	if e.writeLate(ctx, late) {
		return true
	}
	l.outcome.Store(late) // for the next try
	return false
}

// writeLate writes a late outcome, and reports whether the export has
// ended: by it, or otherwise meanwhile (its artifact then removed), or
// given up on after AbandonedAfter, for Recover to end.
func (e *Exporter) writeLate(ctx context.Context, late *lateOutcome) bool {
	wctx, cancel := context.WithTimeout(ctx, e.renewal)
	defer cancel()
	attrs := []any{slog.String("tenant_id", late.req.TenantID), slog.String("export_id", late.req.ID)}
	err := e.store.AppendExportEvent(wctx, late.ev)
	owner := endOther
	if runproof.ErrorCode(err) == runproof.ECONFLICT {
		owner = e.ownEnd(wctx, late.ev)
	}
	switch {
	case owner == endUnknown:
		return false // tried again at the next renewal
	case err == nil, owner == endOwn: // written, by this try or an earlier one
		e.count(late.ev.Kind)
		e.log.InfoContext(ctx, "export outcome recorded late", append(attrs, slog.String("outcome", late.ev.Kind))...)
		e.ended(wctx, late.req, late.ev, nil) // one try: the lease's context is short
		return true
	case runproof.ErrorCode(err) == runproof.ECONFLICT:
		e.log.WarnContext(ctx, "export ended meanwhile", append(attrs, slog.Any("error", err))...)
		if err := e.dropOrphan(late.req, late.ev); err != nil {
			e.log.ErrorContext(ctx, "artifact of an export ended meanwhile not removed", append(attrs, slog.Any("error", err))...)
		}
		return true
	case e.now().After(late.req.CreatedAt.Add(AbandonedAfter)):
		e.log.ErrorContext(ctx, "export outcome not recorded: given up", append(attrs, slog.Any("error", err))...)
		return true
	}
	return false
}

// release stops renewing an export's lease and forgets it among those
// being made; it returns once no renewal is under way, so that none
// follows the export's end. Releasing twice does nothing. An export whose
// end is to be written late is left to its lease.
func (e *Exporter) release(exportID string) {
	v, ok := e.making.Load(exportID)
	if !ok || v.(*lease).late.Load() {
		return
	}
	e.making.Delete(exportID)
	l := v.(*lease)
	l.stop()
	<-l.done
}
