package export

import "time"

// SetLeaseRenewal makes the Exporters made from now on renew leases every
// d, for tests of renewal, and returns the function that restores the
// default.
func SetLeaseRenewal(d time.Duration) (restore func()) {
	was := leaseRenewal
	leaseRenewal = d
	return func() { leaseRenewal = was }
}
