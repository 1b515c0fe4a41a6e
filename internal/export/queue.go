package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

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

// How long an export may take. AbandonedAfter must exceed MaxQueued plus
// MaxDuration: a live process has ended each of its exports by then.
const (
	// MaxQueued bounds how long an export Start recorded waits for its
	// turn: one that waits longer fails.
	MaxQueued = 20 * time.Minute
	// MaxDuration bounds the making of one export: one that takes longer
	// fails ("context deadline exceeded"). Exports of 100 000 steps take
	// seconds.
	MaxDuration = 30 * time.Minute
	// LeaseFor is how long the lease of an export being made lasts: the
	// process making it renews it four times as often, and Recover takes
	// an export whose lease ran out for abandoned by a process that
	// stopped.
	LeaseFor = 2 * time.Minute
	// AbandonedAfter is how long after it was requested an export that
	// has not ended is taken for abandoned, lease or not: for one whose
	// process stopped before its lease was first written.
	AbandonedAfter = time.Hour
)

// AbandonedAfter exceeds MaxQueued plus MaxDuration, or this does not compile.
const _ = uint64(AbandonedAfter - MaxQueued - MaxDuration - 1)

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
		defer e.release(r.ID)
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("export %s: panic: %v", r.ID, p)
				e.end(bg, r, runproof.ExportEvent{}, err, "")
			}
			var failed *Failed
			switch {
			case errors.Is(err, errEndedMeanwhile): // logged by end
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

// Stats is what an Exporter is doing and has done, for metrics.
type Stats struct {
	Making       int   // exports recorded and not ended, those Start began that wait for their turn included
	Waiting      int64 // exports Start began that wait for their turn
	Completed    int64 // exports it ended completed
	Failed       int64 // exports it ended failed (interrupted included)
	LedgerBehind int   // tenants whose ledger misses a finished export it could not append
}

// Stats returns what the Exporter is doing and has done.
func (e *Exporter) Stats() Stats {
	behind := 0
	e.unsynced.Range(func(_, _ any) bool { behind++; return true })
	return Stats{Making: e.Making(), Waiting: e.queued.Load(), Completed: e.completed.Load(), Failed: e.failed.Load(),
		LedgerBehind: behind}
}
