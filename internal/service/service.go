package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/runproof/runproof/internal/policy"
	"github.com/runproof/runproof/internal/runproof"
)

// Service is the application layer. Create it with New.
type Service struct {
	store runproof.Store
	now   func() time.Time
	newID func() string

	mu         sync.Mutex
	evaluators map[string]*policy.Evaluator // by snapshot id

	spans spanIndex // OTLP span ids of runs' steps (otlp.go)
}

// Options tune a Service; zero values take the defaults.
type Options struct {
	Now   func() time.Time // the clock (default time.Now)
	NewID func() string    // id generator for runs, incidents, policies and the audit events Record stores without one (default UUIDv7)
}

// New returns a Service over store.
func New(store runproof.Store, opts Options) *Service {
	s := &Service{store: store, now: opts.Now, newID: opts.NewID, evaluators: map[string]*policy.Evaluator{},
		spans: spanIndex{page: MaxTracePage}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = runproof.NewID
	}
	return s
}

// Ping reports whether the store answers.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Now is the service's clock, as runproof keeps times.
func (s *Service) Now() time.Time { return runproof.Timestamp(s.now()) }

// KeyPrefix starts every API key, so that a leaked key is easy to spot.
const KeyPrefix = "rp_"

// HashKey is how API keys are kept: SHA-256 of the whole secret. Keys carry
// 256 random bits, so no salt or slow hash is needed.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// KeyInput says what an API key may do.
type KeyInput struct {
	Role    runproof.Role
	Name    string // how people know it; default its role
	AgentID string // an agent key's one agent: it opens, writes and polls that agent's runs alone; "" for any agent
}

// CreateAPIKey makes a key for a tenant and returns its secret, which is
// never stored and cannot be shown again.
func (s *Service) CreateAPIKey(ctx context.Context, tenantID string, in KeyInput) (string, runproof.APIKey, error) {
	var errs runproof.Fields
	switch {
	case tenantID == "":
		errs.Add("tenant", "is required")
	case !runproof.ValidTenantID(tenantID):
		errs.Add("tenant", runproof.TenantIDRule)
	}
	role := in.Role
	if !role.Valid() {
		errs.Add("role", "must be one of %s", runproof.RoleNames())
	}
	name := strings.TrimSpace(in.Name) // a reviewer's default name, say: never blank
	errs.Text("name", name, runproof.MaxName)
	switch {
	case in.AgentID != "" && role != runproof.RoleAgent:
		errs.Add("agent", "binds an agent key to its agent: the %s role writes no run of its own", role)
	case in.AgentID != "" && strings.TrimSpace(in.AgentID) != in.AgentID:
		errs.Add("agent", "must name the agent as its runs give agent_id, without surrounding white space")
	case in.AgentID != "":
		errs.Text("agent", in.AgentID, runproof.MaxName)
	}
	if err := errs.Err(); err != nil {
		return "", runproof.APIKey{}, err
	}
	var raw [40]byte // 32 bytes of secret, 8 of public id
	if _, err := rand.Read(raw[:]); err != nil {
		return "", runproof.APIKey{}, fmt.Errorf("create key: %w", err)
	}
	secret := KeyPrefix + hex.EncodeToString(raw[:32])
	k := runproof.APIKey{ID: "key_" + hex.EncodeToString(raw[32:]),
		TenantID: tenantID, Role: role, Name: name, AgentID: in.AgentID, Hash: HashKey(secret), CreatedAt: s.Now()}
	if k.Name == "" {
		k.Name = string(role)
	}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return "", runproof.APIKey{}, err
	}
	return secret, k, nil
}

// ListAPIKeys returns the tenant's keys, oldest first, revoked ones too.
func (s *Service) ListAPIKeys(ctx context.Context, tenantID string) ([]runproof.APIKey, error) {
	return s.store.ListAPIKeys(ctx, tenantID)
}

// RevokeAPIKey revokes one of the tenant's keys now: from then on it
// authenticates nothing.
func (s *Service) RevokeAPIKey(ctx context.Context, tenantID, keyID string) (runproof.APIKey, error) {
	return s.store.RevokeAPIKey(ctx, tenantID, keyID, s.Now())
}

// KeyBySecret returns the tenant's key whose secret this is, revoked or
// not, so that a key known only by its secret (a leaked one) can be
// named by its id; ENOTFOUND when the tenant has no such key.
func (s *Service) KeyBySecret(ctx context.Context, tenantID, secret string) (runproof.APIKey, error) {
	k, err := s.store.APIKeyByHash(ctx, HashKey(secret))
	if err == nil && k.TenantID != tenantID {
		err = runproof.Errorf(runproof.ENOTFOUND, "tenant %q has no API key with this secret", tenantID)
	}
	return k, err
}

// Authenticate returns the key whose secret this is, EUNAUTHORIZED if none
// or if it was revoked (the key is returned with that error then: the
// refusal is its tenant's to record).
func (s *Service) Authenticate(ctx context.Context, secret string) (runproof.APIKey, error) {
	if !strings.HasPrefix(secret, KeyPrefix) {
		return runproof.APIKey{}, runproof.Errorf(runproof.EUNAUTHORIZED, "the API key is not valid")
	}
	k, err := s.store.APIKeyByHash(ctx, HashKey(secret))
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return runproof.APIKey{}, runproof.Errorf(runproof.EUNAUTHORIZED, "the API key is not valid")
	} else if err != nil {
		return runproof.APIKey{}, err
	}
	return usable(k)
}

// KeyByID returns one of the tenant's keys by its id, for a token made out
// to it (a signed download URL): EUNAUTHORIZED if there is none or it was
// revoked since (returned with the key, as by Authenticate).
func (s *Service) KeyByID(ctx context.Context, tenantID, keyID string) (runproof.APIKey, error) {
	k, err := s.store.APIKey(ctx, tenantID, keyID)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return runproof.APIKey{}, runproof.Errorf(runproof.EUNAUTHORIZED, "the API key it was made out to is gone")
	} else if err != nil {
		return runproof.APIKey{}, err
	}
	return usable(k)
}

// usable returns k, with EUNAUTHORIZED if it no longer authenticates.
func usable(k runproof.APIKey) (runproof.APIKey, error) {
	switch {
	case k.RevokedAt != nil && runproof.ValidTenantID(k.TenantID):
		return k, runproof.Errorf(runproof.EUNAUTHORIZED, "the API key was revoked at %s", runproof.FormatTime(*k.RevokedAt))
	case !runproof.ValidTenantID(k.TenantID):
		// Made before the rule: its tenant could not export.
		return runproof.APIKey{}, runproof.Errorf(runproof.EUNAUTHORIZED,
			"the API key is not valid: its tenant id %q is no longer accepted (it %s); create a key for another tenant id", k.TenantID, runproof.TenantIDRule)
	}
	return k, nil
}

// evaluator returns the compiled evaluator of a snapshot, compiled when first
// asked for and kept.
func (s *Service) evaluator(snap runproof.Snapshot) (*policy.Evaluator, error) {
	s.mu.Lock()
	e, ok := s.evaluators[snap.ID]
	s.mu.Unlock()
	if ok {
		return e, nil
	}
	// Compiled without the lock, which every tenant's appends take: two
	// appends may compile one snapshot at once, and keep either.
	e, err := policy.Compile(snap.Policies)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", snap.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.evaluators) >= 10_000 { // bound the cache; recompiling is cheap
		clear(s.evaluators)
	}
	s.evaluators[snap.ID] = e
	return e, nil
}
