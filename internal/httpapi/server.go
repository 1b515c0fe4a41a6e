package httpapi

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
)

// Options configure the API.
type Options struct {
	Logger *slog.Logger
	// ModelPrices add to or replace the prices of otlp.DefaultPrices, which
	// cost OTLP spans that carry tokens but no cost.
	ModelPrices otlp.Prices
	// Ledger serves checkpoints and proofs; without it those routes answer 503.
	Ledger *ledger.Ledger
	// Keys are the signing keys whose public halves are published, and
	// which key signed download URLs.
	Keys *signing.Keyring
	// KeyUses are the servers' starts the keyring recorded
	// (signing.Keyring.Uses): when each key stopped signing download URLs.
	KeyUses []signing.KeyUse
	// Background is what exports asked for with Prefer: respond-async are
	// made under, after their requests end: cancelling it interrupts them
	// (recorded as such). Default: never cancelled.
	Background context.Context
	// RequestTimeout bounds a request, but an export made in it and a
	// download (route.long): one the database does not answer within it,
	// as when the database hangs, fails with 503 and Retry-After instead
	// of holding its client. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// BodyBuffer bounds the bytes of request bodies being read and
	// handled at once (each counted at its Content-Length; one sent in
	// chunks at 64 KiB, then at the most a body may be once it outgrows
	// that; a gzipped body also for what it inflates to, counted alike):
	// a client sending slowly holds its buffer for as long
	// as it takes, and a thousand of them would hold gigabytes. A body
	// that does not fit waits for room until its request's time runs out,
	// then gets 503. Bodies of at most 64 KiB have 16 MiB of their own
	// besides. One tenant's bodies hold at most half of each.
	// Default (and when not above zero) DefaultBodyBuffer.
	BodyBuffer int64
	// Writing bounds the batches of steps (native or OTLP) being written
	// at once, and half of it those of one tenant, so that one tenant's
	// flood leaves turns to the others; batches wait their turn, first
	// come first served, until their request's time runs out (503).
	// Beyond a few, batches only queue for the database's writer (SQLite
	// has one), and the audit events of every request, which need that
	// writer too, would wait behind them all. Default (and when not above
	// zero) DefaultWriting.
	Writing int64
}

// DefaultWriting is the default Options.Writing: four times the CPUs,
// at least 8: enough for PostgreSQL to write several at once.
var DefaultWriting = int64(max(8, 4*runtime.GOMAXPROCS(0)))

// DefaultRequestTimeout is the default Options.RequestTimeout: far more
// than the largest batch of steps takes.
const DefaultRequestTimeout = 30 * time.Second

// DefaultBodyBuffer is the default Options.BodyBuffer: 64 bodies of the
// largest size, many more of the usual ones.
const DefaultBodyBuffer = 64 * service.MaxBodyBytes

// newBodies returns the budget of bodies of size bytes: one tenant's take
// at most half of it, but always room for the largest body and what it
// inflates to.
func newBodies(size int64) *shares { return newShares(size, 2*(service.MaxBodyBytes+1)) }

// shortContext bounds what a request may take, RequestTimeout: the whole
// of one, or a long one's lookups (its key, the export it downloads).
func (s *Server) shortContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.requestTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.requestTimeout)
}

// readyTimeout bounds /readyz's check of the store.
const readyTimeout = 3 * time.Second

// Server is the HTTP API. Create it with New.
type Server struct {
	svc     *service.Service
	exports *export.Exporter
	log     *slog.Logger
	mux     *http.ServeMux
	routes  []route
	metrics *metrics
	prices  otlp.Prices
	ledger  *ledger.Ledger
	keys    *signing.Keyring
	// keyUses are the servers' starts with their signing keys, this one's
	// last (signedurl.go).
	keyUses []signing.KeyUse
	shared  sharedKeys  // the keys and starts of the servers sharing the keys, read again now and then
	audits  *auditRetry // audit events waiting for the database
	refused refusals    // the revoked keys whose use was audited lately
	// background is Options.Background.
	background     context.Context
	requestTimeout time.Duration
	bodies         *shares // Options.BodyBuffer
	smallBodies    *shares // smallBodies: of bodies of at most smallBody bytes
	writing        *shares // Options.Writing
}

// New returns the API handler over svc, making exports with exports.
func New(svc *service.Service, exports *export.Exporter, opts Options) *Server {
	s := &Server{svc: svc, exports: exports, log: opts.Logger, mux: http.NewServeMux(),
		prices: otlp.DefaultPrices().With(opts.ModelPrices), ledger: opts.Ledger, keys: opts.Keys, background: opts.Background,
		requestTimeout: cmp.Or(opts.RequestTimeout, DefaultRequestTimeout),
		bodies:         newBodies(DefaultBodyBuffer), smallBodies: newShares(smallBodies, 2*smallBody),
		writing: newShares(DefaultWriting, 1)}
	if opts.BodyBuffer > 0 {
		s.bodies = newBodies(opts.BodyBuffer)
	}
	if opts.Writing > 0 {
		s.writing = newShares(opts.Writing, 1)
	}
	if s.background == nil {
		s.background = context.Background()
	}
	if s.keys != nil {
		s.keyUses = append(slices.Clone(opts.KeyUses), signing.KeyUse{At: svc.Now(), KeyID: s.keys.Active().ID})
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.audits = newAuditRetry(svc.Record, s.log)
	s.metrics = newMetrics(s.audits, exports, opts.Ledger)
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	s.mux.HandleFunc("/api/v1/logs/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, r, newProblem(http.StatusMethodNotAllowed, "method_not_allowed", "the logs API is read-only: only GET (and HEAD) is allowed"))
			return
		}
		writeProblem(w, r, newProblem(http.StatusNotFound, "not_found", "no such route: see /openapi.json"))
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allowed := s.allowedMethods(r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeProblem(w, r, newProblem(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here: use "+strings.Join(allowed, " or ")))
			return
		}
		writeProblem(w, r, newProblem(http.StatusNotFound, "not_found", "no such route: see /openapi.json"))
	})
	return s
}

// ServeHTTP gives every request a correlation id, then routes it.
//
// No id, name or filter value holds a control character (runproof.CheckText),
// and PostgreSQL cannot even compare text with U+0000: a path with one
// names nothing (404) and a query parameter with one is invalid (422).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Correlation-ID")
	if id == "" || len(id) > runproof.MaxCorrelationID || runproof.CheckText(id) != nil {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Correlation-ID", id)
	w.Header().Set("X-Content-Type-Options", "nosniff") // answers are never to be read as another type
	r = r.WithContext(context.WithValue(r.Context(), correlationKey{}, id))
	if runproof.CheckText(r.URL.Path) != nil {
		writeProblem(w, r, newProblem(http.StatusNotFound, "not_found", "no such route or record: a path is valid UTF-8 and never holds control characters"))
		return
	}
	if !cleanPath(r.URL.Path) { // which the router would answer with a redirect page
		writeProblem(w, r, newProblem(http.StatusNotFound, "not_found", "no such route or record: a path never holds empty, '.' or '..' segments"))
		return
	}
	for name, values := range r.URL.Query() {
		for _, v := range values {
			if err := runproof.CheckText(v); err != nil {
				writeError(w, r, s.log, runproof.Invalid(runproof.FieldError{Field: name, Message: err.Error()}))
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
}

// cleanPath reports whether p is as path.Clean leaves it, but for a
// trailing slash.
func cleanPath(p string) bool {
	c := path.Clean(p)
	return p == c || p == c+"/"
}

type correlationKey struct{}

func correlationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// call is what a handler gets: the request, the caller's key and helpers.
type call struct {
	r        *http.Request
	key      runproof.APIKey
	detail   string        // for the audit event of the request
	maxLimit int           // the most the route's limit parameter may be
	bodies   *shares       // the room of bodies (reserveBody)
	small    *shares       // of small ones; bodies' when nil
	atEnd    []func()      // run once the route's handler returns (room for its body given back)
	wait     time.Duration // the longest it waits for room or a write turn; 0: as its time allows
}

func (c *call) tenant() string { return c.key.TenantID }

// handler answers one route. It returns an error to send as a problem.
type handler func(w http.ResponseWriter, c *call) error

// route is one line of the route table: what runs, who may call it, how it
// is audited and documented.
type route struct {
	method, path string
	perm         runproof.Permission // "" for public routes
	summary      string
	request      any  // a value of the body type, for the OpenAPI document
	bodyOptional bool // the body may be left out (decodeBody's allowEmpty)
	response     any  // a value of the success body type, for the OpenAPI document
	// media are the media types of a success body that is not JSON of a
	// type (an artifact, a signed note), for the OpenAPI document.
	media  []string
	status int // success status, for the OpenAPI document
	// repeatStatus is the status of an identical re-send, which changes
	// nothing and answers the same body, for the OpenAPI document.
	repeatStatus int
	async        bool // answers 202 with the same body when asked with Prefer: respond-async
	long         bool // may take minutes (an export made in the request, a download): RequestTimeout bounds its lookups only
	otlp         bool // OTLP/HTTP: protobuf or JSON bodies, its errors google.rpc.Status (otlp.go)
	evidence     bool // the response carries the "evidence" member (writeEvidence)
	signedURL    bool // a signed download URL may stand in for the API key (signedurl.go)
	query        []string
	// querySchemas describe, for the OpenAPI document, the route's query
	// parameters that do not mean what their names mean elsewhere (see
	// querySchema): the consistency route's from and to are tree sizes.
	querySchemas map[string]map[string]any
	// maxLimit is the most its limit parameter, when it takes one, may be
	// (pageMax when 0); the OpenAPI document states it.
	maxLimit int
	handle   handler
}

// pageMax is the most a page of a list holds unless its route says
// otherwise.
const pageMax = 100

// limitMax is the most the route's limit parameter may be.
func (rt route) limitMax() int { return cmp.Or(rt.maxLimit, pageMax) }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap authenticates, authorises, runs and audits one route.
func (s *Server) wrap(rt route) http.Handler {
	name := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if !rt.long {
			ctx, cancel := s.shortContext(r.Context())
			defer cancel()
			r = r.WithContext(ctx)
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.metrics.observe(name, sw.status, time.Since(start))
		}()
		if rt.perm != "" { // a tenant's data, or a refusal to show it: no cache keeps it (a signed URL needs no header to send)
			sw.Header().Set("Cache-Control", "no-store")
		}
		handle := func(c *call) error {
			defer func() {
				for _, f := range c.atEnd {
					f()
				}
			}()
			if err := checkQuery(r, rt); err != nil && rt.otlp {
				writeOTLPStatus(sw, otlpFormatFor(r), http.StatusBadRequest, err.Error())
				return nil
			} else if err != nil {
				return err
			}
			return rt.handle(sw, c)
		}
		if rt.perm == "" {
			if err := handle(&call{r: r, maxLimit: rt.limitMax(), bodies: s.bodies, small: s.smallBodies}); err != nil {
				s.fail(sw, r, err)
			}
			return
		}
		if msg := s.audits.refusal(); msg != "" {
			if rt.otlp {
				writeOTLPStatus(sw, otlpFormatFor(r), http.StatusServiceUnavailable, msg)
			} else {
				s.fail(sw, r, runproof.Errorf(runproof.EUNAVAILABLE, "%s", msg))
			}
			return
		}
		c, err := s.caller(sw, r, rt)
		if err != nil {
			writeError(sw, r, s.log, err)
			// A key of a tenant's, refused (revoked): the tenant keeps the
			// refusal, once a minute at most, so that whoever holds a
			// leaked key cannot fill the audit log with it.
			if c != nil && s.refused.first(c.key.ID, s.svc.Now()) {
				_ = http.NewResponseController(sw).Flush()
				s.audit(r, s.requestEvent(c, name, runproof.AuditAuthorization, runproof.DecisionDeny, sw.status,
					runproof.ErrorMessage(err)+" (its further uses within a minute are not recorded)"))
			}
			return
		}
		r, key := c.r, c.key
		category := runproof.AuditAccess
		if rt.method != http.MethodGet {
			category = runproof.AuditWrite
		}
		decision := runproof.DecisionAllow
		if !key.Role.Can(rt.perm) {
			category, decision = runproof.AuditAuthorization, runproof.DecisionDeny
			writeError(sw, r, s.log, runproof.Errorf(runproof.EFORBIDDEN,
				"the %s role may not do this: it needs the %s permission", key.Role, rt.perm))
		} else if err := handle(c); err != nil {
			s.fail(sw, r, err)
		}
		// The client has its answer now, not once the audit event is
		// written, which waits for the database's writer.
		_ = http.NewResponseController(sw).Flush()
		s.audit(r, s.requestEvent(c, name, category, decision, sw.status, c.detail))
	})
}

// checkQuery refuses a query string r.URL.Query() cannot read all of (it
// drops what it cannot read), and a parameter the route does not take:
// either would be ignored without a word (?limt=5). Public routes (health,
// metrics) take any parameter.
func checkQuery(r *http.Request, rt route) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	var escape url.EscapeError
	switch {
	case errors.As(err, &escape):
		return runproof.Invalid(runproof.FieldError{Field: "query", Message: fmt.Sprintf("cannot be read (%v): write %% as %%25", err)})
	case err != nil:
		return runproof.Invalid(runproof.FieldError{Field: "query", Message: fmt.Sprintf("cannot be read (%v)", err)})
	case rt.perm == "":
		return nil
	}
	var errs runproof.Fields
	for name, values := range q {
		switch {
		case len(values) > 1 && slices.Contains(rt.query, name):
			errs.Add(name, "is given %d times: give it once", len(values))
		case slices.Contains(rt.query, name):
		case len(rt.query) == 0:
			errs.Add(name, "is not a query parameter of this route: it takes none")
		default:
			errs.Add(name, "is not a query parameter of this route: it takes %s", strings.Join(rt.query, ", "))
		}
	}
	slices.SortFunc(errs, func(a, b runproof.FieldError) int { return strings.Compare(a.Field, b.Field) })
	return errs.Err()
}

// fail answers the error a handler returned, unless its answer has begun:
// a problem appended to it would corrupt it, so the error is only logged.
func (s *Server) fail(w *statusWriter, r *http.Request, err error) {
	if w.status != 0 {
		s.log.WarnContext(r.Context(), "request failed after its answer began", slog.String("path", r.URL.Path), slog.Any("error", err))
		return
	}
	writeError(w, r, s.log, err)
}

// allowedMethods lists the methods of the routes matching r's path, for a
// request whose method matches none of them.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allowed []string
	for _, rt := range s.routes {
		if slices.Contains(allowed, rt.method) {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = rt.method
		if _, pattern := s.mux.Handler(probe); strings.HasPrefix(pattern, rt.method+" ") {
			allowed = append(allowed, rt.method)
		}
	}
	if i := slices.Index(allowed, http.MethodGet); i >= 0 {
		allowed = slices.Insert(allowed, i+1, http.MethodHead) // served by every GET route
	}
	return allowed
}
