// Package ledger is the tamper-evident, append-only log of a tenant's
// exports, audit events and steps, one log per tenant, in the form of the Go
// checksum database (golang.org/x/mod/sumdb/tlog, RFC 6962 hashing).
//
// A leaf is the RFC 8785 bytes of one of four entries:
//
//   - ExportEntry (runproof.export.v1): a finished export, appended by the
//     exporter when the export completes or fails (Append), or later by
//     Sync for one a crash left out.
//   - ManifestEntry (runproof.manifest.v1): the sealed manifest of a ZIP
//     export, appended before the ZIP is written (AppendManifest). Anyone
//     rebuilds it from the ZIP's manifest.json (ManifestLeaf) and checks it
//     with the ZIP's proof.json (CheckManifestProof).
//   - AuditEntry (runproof.audit.v1): an audit event, appended a thousand
//     under a checkpoint by SyncAudit, which `serve` runs for every tenant
//     every 30 s (Seal) and the `export` command runs too.
//   - StepsEntry (runproof.steps.v1): the digest of a range of a run's
//     steps, appended by SyncSteps a hundred runs under a checkpoint, run
//     with SyncAudit.
//
// The tree's stored hashes and a checkpoint signed as a note
// (golang.org/x/mod/sumdb/note, Ed25519) are written with the leaves in
// one transaction, so that every state of the tree is signed and kept.
// Anyone holding a Proof and the verifier key can check an entry's
// inclusion with tlog and note alone; Verify recomputes a whole log from
// the export records, audit events and steps and names the first entry
// that does not match.
//
// The ledger never changes or removes what it wrote; the store's triggers
// refuse it, and Verify finds what was changed behind their back.
//
// Words used here and by its callers:
//   - append: write entries, their hashes and a checkpoint in one
//     transaction (Append, AppendManifest).
//   - sync: append what is missing: exports a crash left out (Sync), audit
//     events and steps waiting for their entries (SyncAudit, SyncSteps).
//   - seal: to sync a tenant's audit events and steps (Seal, SealTenant,
//     run by serve every 30 s and by the export command); a ZIP's manifest
//     is "sealed" too, when it is signed and appended (AppendManifest), so
//     that the ZIP can carry its proof.
package ledger
