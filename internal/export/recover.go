package export

import (
	"context"
	"log/slog"

	"github.com/runproof/runproof/internal/runproof"
)

// Interrupt records the exports this Exporter is still making as failed,
// interrupted, and returns how many: for a process that stops before they
// are done, which would otherwise leave them pending until Recover, an hour
// later. One that ends meanwhile keeps its own end.
// Its artifact, if the export goes on to write one, is removed by the
// export itself when its own end is refused.
func (e *Exporter) Interrupt(ctx context.Context) int {
	n := 0
	e.making.Range(func(id, v any) bool {
		l := v.(*lease)
		if l.late.Load() { // its end is known: written, if the database takes it now
			if e.settle(ctx, l) {
				e.making.Delete(id)
				l.stop()
			} else {
				e.log.WarnContext(ctx, "export outcome not recorded before stopping: Recover ends it once its lease runs out",
					slog.String("export_id", id.(string)))
			}
			return true
		}
		ended, err := e.endInterrupted(ctx, l.tenantID, id.(string))
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
		Reason: "interrupted: the process making it stopped before it was done; ask for it again"})
	if runproof.ErrorCode(err) == runproof.ECONFLICT {
		return false, nil
	} else if err != nil {
		return false, err
	}
	e.count(runproof.ExportEventFailed)
	return true, nil
}

// Recover ends what stopped processes left unfinished in a tenant's
// exports: an export that has not ended and whose lease ran out, or that
// was requested AbandonedAfter ago or more, and that this Exporter is not
// making, is recorded as failed and its
// artifact, if it got as far as one, removed; leases that ran out and
// temporary artifact files AbandonedAfter old are removed; and finished
// exports missing from the ledger are appended to it (Ledger.Sync). It
// returns how many exports it ended.
func (e *Exporter) Recover(ctx context.Context, tenantID string) (int, error) {
	now := e.now()
	cutoff := now.Add(-AbandonedAfter)
	stale, err := e.store.UnfinishedExports(ctx, tenantID, cutoff, now)
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, rec := range stale {
		if _, mine := e.making.Load(rec.ID); mine {
			continue // alive here, whatever became of its lease
		}
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
	if err := e.store.DropExportLeases(ctx, tenantID, now); err != nil {
		return ended, err
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
