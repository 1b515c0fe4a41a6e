package runproof

import (
	"sort"
	"time"
)

// NewSnapshot freezes policies into a snapshot whose ID is the digest of the
// canonical JSON of the policies, ordered by name.
func NewSnapshot(tenantID string, policies []Policy, now time.Time) (Snapshot, error) {
	ps := append([]Policy{}, policies...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	id, err := Digest(ps)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{ID: id, TenantID: tenantID, Policies: ps, CreatedAt: Timestamp(now)}, nil
}
