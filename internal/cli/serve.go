package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// shutdownGrace is how long in-flight requests get to finish on shutdown.
const shutdownGrace = 20 * time.Second

// cutWait is how long requests cut at the end of the grace have to record
// how they ended. Grace and cutWait bound the stop but for the last pass
// of sealing (ledger.Seal: a few seconds at most), within the
// 30 s a process manager usually gives (Kubernetes; systemd's default is
// 90 s).
const cutWait = 5 * time.Second

// closeWait bounds what the end of a stop waits for a database that does
// not answer: recording the exports cut as interrupted, and closing the
// store (PostgreSQL's pool waits on its connections). The grace, cutWait,
// the last pass of sealing (3 s at most) and two of these keep the stop
// within 30 s.
const closeWait = time.Second

// sealEvery is how often serve puts new audit events and steps into the
// ledger.
const sealEvery = 30 * time.Second

// optimizeInterval is how often serve refreshes SQLite's statistics: a new
// database grows from nothing within minutes, and a plan chosen on its
// first statistics may read a whole table where it meant a few rows.
const optimizeInterval = 10 * time.Minute

// recoverInterval is how often serve ends the exports a stopped process
// left unfinished (export.LeaseFor, export.AbandonedAfter).
const recoverInterval = 10 * time.Minute

// optimizer is a store whose planner statistics need refreshing.
type optimizer interface{ Optimize(context.Context) error }

// every runs fn every interval (and at once when now) until ctx is done.
func every(ctx context.Context, interval time.Duration, now bool, fn func()) {
	if now {
		fn()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "run the HTTP API",
		help: `Usage: runproof serve [--addr HOST:PORT] [flags]

Runs the HTTP API until SIGINT, SIGTERM or SIGHUP, then lets in-flight requests
finish (at most 20s); exports still being made after that are recorded as
failed, interrupted. Migrations are applied at start. Exports are made as
many at once as there are cores (at least 2); others wait their turn.

  --addr HOST:PORT      where to listen (default 127.0.0.1:8080; port 0 picks
                        a free port, logged as addr=HOST:PORT). Plain HTTP:
                        beyond this machine, serve it behind a proxy that
                        terminates TLS, since every request carries a key
  --model-prices FILE   model prices (JSON, USD per million tokens) added to
                        the built-in table that costs OTLP spans; docs/otel.md
` + commonHelp + `
Exits 2, before anything is made under --data, when a flag is wrong (an
--addr that is not HOST:PORT, a --model-prices file that will not do), and
1 when serving fails (the address in use, the database unreachable).

Examples:
  runproof serve
  runproof serve --addr 0.0.0.0:8080 --log-format json
  RUNPROOF_DATABASE_URL=postgres://runproof@db/runproof runproof serve
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			addr := fs.String("addr", "127.0.0.1:8080", "listen address")
			pricesFile := fs.String("model-prices", "", "JSON file of model prices for OTLP spans")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("serve: unexpected argument %q (see runproof serve -h)", args[0])
				}
				if *addr == "" { // which would listen on every interface
					return usagef("serve: --addr is empty: give HOST:PORT, e.g. 127.0.0.1:8080")
				}
				var prices otlp.Prices
				if *pricesFile != "" {
					b, err := os.ReadFile(*pricesFile)
					if err == nil {
						prices, err = otlp.ParsePrices(b)
					}
					if err != nil { // the flag names a file that will not do
						return usagef("serve: --model-prices %s: %v", *pricesFile, err)
					}
				}
				return serve(ctx, e, *addr, prices)
			}
		},
	}
}

func serve(ctx context.Context, e *env, addr string, prices otlp.Prices) error {
	// Listen first, so that a busy port is one clear error, before
	// anything is made under --data, and port 0 can be logged as the port
	// actually bound.
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return usagef("serve: --addr %q is not HOST:PORT (%v): give, e.g., 127.0.0.1:8080, or :8080 for every interface", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("cannot listen on %s: the address is already in use (is runproof already running? choose another with --addr)", addr)
	}
	if err != nil {
		return fmt.Errorf("cannot listen on %s (--addr): %w", addr, err)
	}
	defer ln.Close()
	store, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer closeStore(e, store)
	warnOpenDataDir(e, e.data)
	if e.engine() == engineSQLite {
		warnOpenDatabase(e, e.sqlitePath())
	}
	// Serving goes on: the records are still checked by ledger verify.
	if guards, err := damagedTriggers(ctx, store); err != nil {
		return err
	} else if guards != "" {
		e.log.Error("the database lacks guard triggers as runproof made them", slog.String("problem", guards))
	}
	warnings, err := store.Warnings(ctx)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		e.log.Warn("the database's settings", slog.String("problem", w))
	}
	svc := service.New(store, service.Options{})
	ex, err := openExporter(ctx, e, store)
	if err != nil {
		return err
	}
	if err := signsEveryLedger(ctx, store, ex.ledger); err != nil {
		return err
	}

	// The keyring keeps which key each server started with, once it can
	// serve: a download URL signed by the server before this one works here
	// for its lifetime.
	if err := ex.keys.BeginUse(svc.Now()); err != nil {
		return err
	}
	uses, err := ex.keys.Uses()
	if err != nil {
		return err
	}
	// Requests, and the exports they start in the background, run under
	// reqCtx, cancelled when the shutdown's grace runs out, so that those
	// still running end as their code says (an export recorded as
	// interrupted, the request's audit event) before the exit.
	reqCtx, cutRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cutRequests()
	api := httpapi.New(svc, ex.exporter, httpapi.Options{Logger: e.log, Ledger: ex.ledger, Keys: ex.keys,
		KeyUses: uses, ModelPrices: prices, Background: reqCtx})
	var reqs requests
	srv := &http.Server{
		Handler:           reqs.count(api),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute, // bodies are at most 4 MiB
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
	e.log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("version", version()),
		slog.String("engine", e.engine()), slog.String("data", e.data), slog.String("signing_key", ex.keys.Active().ID))
	stopBackground := startBackground(ctx, e, store, ex)
	defer stopBackground()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var deadline time.Time // to write what audit events wait for the database
	select {
	case serr := <-served:
		err = fmt.Errorf("the HTTP server stopped: %w", serr)
		deadline = time.Now().Add(cutWait)
	case <-ctx.Done():
		// One budget for the whole stop: the requests' grace and cut,
		// then the audit events that wait for the database, with what is
		// left.
		deadline = time.Now().Add(shutdownGrace + cutWait)
		err = shutdown(ctx, e, srv, &reqs, cutRequests, ex.exporter)
	}
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	if n := api.FlushAudit(fctx); n > 0 {
		e.log.Error("audit events not stored: the server stopped while the database was away", slog.Int("events", n))
	}
	return err
}

// closeStore closes the store, waiting closeWait at most: a database that
// hangs does not keep the process from exiting.
func closeStore(e *env, store io.Closer) {
	closed := make(chan struct{})
	go func() {
		if err := store.Close(); err != nil {
			e.log.Warn("the database did not close cleanly", slog.Any("error", err))
		}
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeWait):
		e.log.Warn("the database did not close in time: exiting without it", slog.Duration("waited", closeWait))
	}
}

// requests counts the requests being served.
type requests struct {
	wg      sync.WaitGroup
	running atomic.Int64
}

func (q *requests) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q.wg.Add(1)
		q.running.Add(1)
		defer func() { q.running.Add(-1); q.wg.Done() }()
		h.ServeHTTP(w, r)
	})
}

// signsEveryLedger refuses to serve when the latest checkpoint of a
// tenant's ledger is signed by a key this process does not know: nothing
// could be appended to that ledger, so that the tenant's every export
// would be refused.
func signsEveryLedger(ctx context.Context, store ledgerTenants, led *ledger.Ledger) error {
	tenants, err := store.LedgerTenants(ctx)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		if err := led.Ready(ctx, t); err != nil {
			return fmt.Errorf("cannot serve: %w", err)
		}
	}
	return nil
}

// startBackground starts the server's background work, until the
// returned stop is called: audit events and new steps join their
// tenant's ledger in batches, every sealEvery and once more after the
// last request;
// what a stopped process left unfinished in the exports is ended, now,
// once the leases it held have run out, and every recoverInterval;
// SQLite's planner statistics follow the data.
func startBackground(ctx context.Context, e *env, store runproof.Store, ex exporting) (stop func()) {
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	background.Go(func() { ex.ledger.Seal(bgCtx, sealEvery, e.log) })
	background.Go(func() {
		recoverAll := func() { ex.exporter.RecoverAll(bgCtx) }
		recoverAll()
		// The exports of a process stopped just before this one started
		// hold their leases for a while yet: once they have run out,
		// recover again.
		select {
		case <-bgCtx.Done():
			return
		case <-time.After(export.LeaseFor + 5*time.Second):
			recoverAll()
		}
		every(bgCtx, recoverInterval, false, recoverAll)
	})
	if o, ok := store.(optimizer); ok {
		background.Go(func() {
			every(bgCtx, optimizeInterval, false, func() {
				if err := o.Optimize(bgCtx); err != nil && bgCtx.Err() == nil {
					e.log.Warn("database statistics not refreshed", slog.Any("error", err))
				}
			})
		})
	}
	return func() {
		cancel()
		background.Wait()
	}
}

// shutdown stops srv: requests, and the exports they started in the
// background, get shutdownGrace to end; those still running are then
// cancelled (cutRequests) and get cutWait to record how they ended, and
// exports still being made are recorded as interrupted.
func shutdown(ctx context.Context, e *env, srv *http.Server, reqs *requests, cutRequests func(), exporter *export.Exporter) error {
	e.log.Info("shutting down", slog.Duration("grace", shutdownGrace))
	exporter.Drain() // the grace is for the exports being made, not those waiting
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err == nil {
		err = exporter.Wait(sctx)
	}
	if err == nil {
		// Every export has ended but those whose outcome the database
		// has not taken yet: a last try at theirs.
		exporter.Interrupt(sctx)
		e.log.Info("stopped")
		return nil
	}
	cut, exports := reqs.running.Load(), exporter.Making()
	cutRequests()
	ended := make(chan struct{})
	go func() { reqs.wg.Wait(); exporter.Wait(context.Background()); close(ended) }()
	select { // a bounded wait: they record how they ended
	case <-ended:
	case <-time.After(cutWait):
	}
	// Exports cut record themselves as interrupted; those still being made
	// (past their last look at the context) are recorded so here.
	ictx, cancelInterrupt := context.WithTimeout(context.WithoutCancel(ctx), closeWait)
	defer cancelInterrupt()
	exporter.Interrupt(ictx)
	srv.Close()
	return fmt.Errorf("work still running after %s was cut off: %d requests, %d exports, some of them in the background (recorded as interrupted, unless done first): %w",
		shutdownGrace, cut, exports, err)
}
