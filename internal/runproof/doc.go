// Package runproof holds the domain of runproof: tenants, API keys, policies,
// runs, steps, incidents and audit events, the error type shared by every
// layer, and the Store interface that each storage engine implements.
//
// It must never perform I/O or import another runproof package: everything
// else depends on it, it depends on nothing of ours.
package runproof
