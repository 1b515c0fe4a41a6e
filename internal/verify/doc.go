// Package verify checks a signed ZIP bundle (docs/integrity.md, "The ZIP bundle")
// offline, from its bytes and, optionally, the public key that should have
// signed it. It never opens a store or the network: anyone holding the ZIP
// can run the same checks.
//
// The checks, in order, each written as one line ("ok", "warn" or "FAIL"),
// the first failure ending the verification:
//
//	members                      manifest.json, manifest.sig, SHA256SUMS, bundle.json, steps.csv,
//	                             report.pdf and an optional proof.json, each once, plain files
//	                             under plain names (no directories, links, absolute or ".." paths,
//	                             backslashes), stored or deflated, the small ones at most 16 MiB
//	manifest.json                a known schema_version, canonical (RFC 8785), nothing unknown
//	manifest.sig                 64 bytes, an Ed25519 signature of manifest.json by the key given,
//	                             whose id is the manifest's key_id (without a key: a warning)
//	SHA256SUMS                   one line per file with the manifest's digests, manifest.json's and
//	                             proof.json's (a line of bundle.json, steps.csv or report.pdf that
//	                             is not the manifest's fails after the member is hashed: the member
//	                             is named when its own digest is not the manifest's either)
//	bundle.json, steps.csv,      the size the ZIP declares, then the bytes streamed, have the
//	report.pdf                   manifest's size and sha256 (nothing larger is ever inflated)
//	bundle.json form             canonical JSON, checked token by token as it streams
//	bundle.json content_hash     recomputed in the same pass (and a SOC 2 bundle's evidence_digest)
//	bundle.json identity         bundle id and type, tenant, run and incident as in the manifest
//	bundle.json steps            each step's content_hash and content_digest recomputed, indexes
//	                             contiguous, statuses valid, tokens = input + output
//	bundle.json totals           step counts, token, cost and duration sums (exact integers),
//	                             first and last index, the one inflection step of the incident
//	steps.csv rows               the header, one row per step of the population, and the same
//	                             steps as bundle.json column by column
//	proof.json                   handed to Options.CheckProof
//
// Memory stays flat whatever the number of steps: bundle.json, steps.csv and
// report.pdf are streamed, each inflated and hashed in chunks by a goroutine
// of its own ahead of its reader, and never held whole; only the small
// members are read into memory.
package verify
