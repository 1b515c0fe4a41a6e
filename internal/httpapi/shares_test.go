package httpapi

import (
	"context"
	"testing"
	"time"
)

// TestShares: one tenant takes at most half of a budget (or what one taker
// may need, when that is more), the others the rest; what a tenant gives
// back is its own to take again.
func TestShares(t *testing.T) {
	s := newShares(100, 10)
	take := func(tenant string, n int64) func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		done, err := s.take(ctx, tenant, n)
		if err != nil {
			return nil
		}
		return done
	}
	a := take("acme", 50)
	if a == nil {
		t.Fatal("half of the budget refused to a tenant")
	}
	if take("acme", 1) != nil {
		t.Error("a tenant took more than half of the budget")
	}
	if g := take("globex", 50); g == nil {
		t.Error("another tenant was refused the rest")
	} else if take("initech", 1) != nil {
		t.Error("more than the budget was taken")
	} else {
		g()
	}
	a()
	if take("acme", 50) == nil {
		t.Error("a tenant's share was not given back")
	}
	if big := newShares(100, 80); big.perTenant != 80 {
		t.Errorf("the share of a budget whose takers may need 80: %d", big.perTenant)
	}
}
