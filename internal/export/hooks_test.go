package export

import "time"

// SetLeaseRenewal makes leases renewed every d, for tests of renewal, and
// returns the function that restores the default.
func SetLeaseRenewal(d time.Duration) (restore func()) {
	was := leaseRenewal
	leaseRenewal = d
	return func() { leaseRenewal = was }
}
