// Package ledger is the export ledger: a tamper-evident, append-only log
// of every finished export, one per tenant, in the form of the Go checksum
// database (golang.org/x/mod/sumdb/tlog, RFC 6962 hashing).
//
// Each finished export is one leaf: the RFC 8785 bytes of its Entry; a ZIP
// export has one more, appended before the ZIP is written, its
// ManifestEntry, which anyone rebuilds from the ZIP's manifest.json
// (ManifestLeaf) and checks with the ZIP's proof.json
// (CheckManifestProof). The tree's stored hashes and a checkpoint signed
// as a note (golang.org/x/mod/sumdb/note, Ed25519) are written with the
// leaf in one transaction, so that every state of the tree is signed and
// kept. Anyone
// holding a Proof and the verifier key can check an export's inclusion
// with tlog and note alone; Verify recomputes a whole log from the export
// records and names the first entry that does not match.
//
// The ledger never changes or removes what it wrote; the store's triggers
// refuse it, and Verify finds what was changed behind their back.
package ledger
