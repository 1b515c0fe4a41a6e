package export

import (
	"context"
	"log/slog"
	"time"
)

// A lease is the renewal of one export's lease while this process makes
// it (keepLease), from its record to its end.
type lease struct {
	tenantID string
	stop     context.CancelFunc
	done     chan struct{} // closed once the renewals have stopped
}

// startLease starts renewing the lease of an export just recorded, and keeps
// it among those being made until release.
func (e *Exporter) startLease(tenantID, exportID string) {
	ctx, stop := context.WithCancel(context.Background())
	l := &lease{tenantID: tenantID, stop: stop, done: make(chan struct{})}
	e.making.Store(exportID, l)
	go func() {
		defer close(l.done)
		e.keepLease(ctx, tenantID, exportID)
	}()
}

// keepLease writes the export's lease at once, then every e.renewal,
// until ctx ends. A renewal that fails is logged: the next may succeed
// before the lease runs out.
func (e *Exporter) keepLease(ctx context.Context, tenantID, exportID string) {
	t := time.NewTicker(e.renewal)
	defer t.Stop()
	for {
		// A renewal that hangs gives way to the next.
		rctx, cancel := context.WithTimeout(ctx, e.renewal)
		err := e.store.LeaseExport(rctx, tenantID, exportID, e.now().Add(LeaseFor))
		cancel()
		if err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "export lease not renewed", slog.String("export_id", exportID), slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// release stops renewing an export's lease and forgets it among those
// being made; it returns once no renewal is under way, so that none
// follows the export's end. Releasing twice does nothing.
func (e *Exporter) release(exportID string) {
	if v, ok := e.making.LoadAndDelete(exportID); ok {
		l := v.(*lease)
		l.stop()
		<-l.done
	}
}
