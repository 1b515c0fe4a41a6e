package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// refusals remembers when the use of each revoked key was last audited.
type refusals struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// first reports whether key's use at now is the first in a minute, and
// remembers it if so.
func (f *refusals) first(key string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.last[key]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if f.last == nil || len(f.last) > 10_000 { // forget the old ones rather than grow
		f.last = map[string]time.Time{}
	}
	f.last[key] = now
	return true
}

// requestEvent is the audit event of a request to the route named name,
// by c's key, answered with status.
func (s *Server) requestEvent(c *call, name, category, decision string, status int, detail string) runproof.AuditEvent {
	return runproof.AuditEvent{ID: runproof.NewID(), OccurredAt: s.svc.Now(), // once, for every try
		TenantID: c.key.TenantID, Actor: c.key.ID, ActorType: c.key.Role.Origin(),
		Category: category, Action: name, Resource: c.r.URL.Path, Decision: decision, Status: status,
		CorrelationID: correlationID(c.r.Context()), SourceComponent: "api", Detail: detail}
}

// caller identifies who sends r to the route rt: the API key of its
// Authorization header, or, where rt takes one, that of its signed
// download URL. A key bound to an agent acts for that agent alone. An
// unknown or missing key is asked for (WWW-Authenticate) and logged.
func (s *Server) caller(w http.ResponseWriter, r *http.Request, rt route) (*call, error) {
	lookup := r // a long route's key is looked up in the time of a request too
	if rt.long {
		ctx, cancel := s.shortContext(r.Context())
		defer cancel()
		lookup = r.WithContext(ctx)
	}
	signed := rt.signedURL && signedURL(r)
	var key runproof.APIKey
	var err error
	if signed {
		key, err = s.signedURLKey(lookup)
	} else {
		key, err = s.authenticate(lookup)
	}
	if runproof.ErrorCode(err) == runproof.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="runproof"`)
		attrs := []any{slog.String("route", rt.method+" "+rt.path), slog.String("remote", r.RemoteAddr),
			slog.String("reason", runproof.ErrorMessage(err)), slog.String("correlation_id", correlationID(r.Context()))}
		if key.ID != "" { // known, and refused
			attrs = append(attrs, slog.String("key_id", key.ID))
		}
		s.log.WarnContext(r.Context(), "unauthenticated request", attrs...)
	}
	if err != nil && key.RevokedAt != nil { // known and refused: revoked
		return &call{r: r, key: key}, err
	} else if err != nil { // unknown, or it could not be looked up: not the caller's fault then
		return nil, err
	}
	if key.AgentID != "" {
		r = r.WithContext(service.ForAgent(r.Context(), key.AgentID))
	}
	c := &call{r: r, key: key, maxLimit: rt.limitMax(), bodies: s.bodies, small: s.smallBodies}
	if signed {
		c.detail = "with a signed download URL made out to this key"
	}
	return c, nil
}

// audit stores the audit event of a request, answered already (its answer
// flushed to the client). It outlives a client that hung up. When the
// database is away, or too slow to answer, the event waits to be written
// again in the background, so that the request ends.
func (s *Server) audit(r *http.Request, ev runproof.AuditEvent) {
	if err := s.audits.store(context.WithoutCancel(r.Context()), ev); err != nil {
		s.log.ErrorContext(r.Context(), "audit event not stored", slog.Any("error", err), slog.String("route", ev.Action))
	}
}

func (s *Server) authenticate(r *http.Request) (runproof.APIKey, error) {
	if n := len(r.Header.Values("Authorization")); n > 1 {
		return runproof.APIKey{}, runproof.Errorf(runproof.EUNAUTHORIZED, "send one Authorization header, not %d", n)
	}
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" { // the scheme is case-insensitive (RFC 9110)
		return runproof.APIKey{}, runproof.Errorf(runproof.EUNAUTHORIZED, "send an API key as \"Authorization: Bearer <key>\" (create one with `runproof keys create`)")
	}
	return s.svc.Authenticate(r.Context(), strings.TrimSpace(secret))
}
