// Package export turns a request for a bundle into an artifact and its
// export record: it checks the request, gathers the run's records, builds
// the bundle (package evidence), renders it (packages under render), writes
// it to the artifact store while hashing it, and records every step of the
// export's lifecycle as an append-only event.
//
// A failed export leaves a `failed` record and no artifact; an artifact is
// only ever visible complete, with the checksum its record states.
package export
