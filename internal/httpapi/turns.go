package httpapi

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// writeTurns hands out the turns to write batches of steps: at most n at
// once, and at most half of them to one tenant, so that one tenant's
// flood leaves turns to the others. Each tenant's waiters, like all of
// them, are served first come first served.
type writeTurns struct {
	all       *semaphore.Weighted
	perTenant int64

	mu      sync.Mutex
	tenants map[string]*tenantTurns // those with a batch holding or waiting for a turn
}

type tenantTurns struct {
	sem   *semaphore.Weighted
	users int // batches holding or waiting for one of its turns
}

func newWriteTurns(n int64) *writeTurns {
	return &writeTurns{all: semaphore.NewWeighted(n), perTenant: max(1, n/2), tenants: map[string]*tenantTurns{}}
}

// take waits for a turn of tenant's until ctx is done, and returns what
// gives it back.
func (w *writeTurns) take(ctx context.Context, tenant string) (done func(), err error) {
	w.mu.Lock()
	t := w.tenants[tenant]
	if t == nil {
		t = &tenantTurns{sem: semaphore.NewWeighted(w.perTenant)}
		w.tenants[tenant] = t
	}
	t.users++
	w.mu.Unlock()
	leave := func() {
		w.mu.Lock()
		if t.users--; t.users == 0 {
			delete(w.tenants, tenant)
		}
		w.mu.Unlock()
	}
	if err := t.sem.Acquire(ctx, 1); err != nil {
		leave()
		return nil, err
	}
	if err := w.all.Acquire(ctx, 1); err != nil {
		t.sem.Release(1)
		leave()
		return nil, err
	}
	return func() {
		w.all.Release(1)
		t.sem.Release(1)
		leave()
	}, nil
}
