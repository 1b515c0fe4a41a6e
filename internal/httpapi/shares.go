package httpapi

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// shares hands out a budget among tenants (the turns to write batches of
// steps, the bytes of request bodies being held): at most all of it at
// once, and at most a tenant's share to one tenant, so that one tenant's
// flood, or its crowd of clients sending slowly, leaves some to the
// others. Each tenant's waiters, like all of them, are served first come
// first served.
type shares struct {
	all       *semaphore.Weighted
	perTenant int64

	mu      sync.Mutex
	tenants map[string]*tenantShare // those holding or waiting for some of the budget
}

type tenantShare struct {
	sem   *semaphore.Weighted
	users int // holding or waiting for some of its share
}

// newShares returns a budget of size, of which one tenant takes at most
// half, but never less than least (the most one taker may need).
func newShares(size, least int64) *shares {
	return &shares{all: semaphore.NewWeighted(size), perTenant: min(size, max(1, size/2, least)), tenants: map[string]*tenantShare{}}
}

// take waits for n of tenant's share until ctx is done, and returns what
// gives it back.
func (s *shares) take(ctx context.Context, tenant string, n int64) (done func(), err error) {
	s.mu.Lock()
	t := s.tenants[tenant]
	if t == nil {
		t = &tenantShare{sem: semaphore.NewWeighted(s.perTenant)}
		s.tenants[tenant] = t
	}
	t.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if t.users--; t.users == 0 {
			delete(s.tenants, tenant)
		}
		s.mu.Unlock()
	}
	if !t.sem.TryAcquire(n) { // at once when it can, whatever ctx
		if err := t.sem.Acquire(ctx, n); err != nil {
			leave()
			return nil, err
		}
	}
	if !s.all.TryAcquire(n) {
		if err := s.all.Acquire(ctx, n); err != nil {
			t.sem.Release(n)
			leave()
			return nil, err
		}
	}
	return func() {
		s.all.Release(n)
		t.sem.Release(n)
		leave()
	}, nil
}
