package runproof

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The export ledger is one Merkle tree per tenant in the form of the Go
// checksum database (package internal/ledger builds and checks it). The
// store only keeps its rows: entries, the tree's stored hashes and signed
// checkpoints, all append-only.

// LedgerHashSize is the size of a tree hash (SHA-256).
const LedgerHashSize = 32

// The types of ledger entries, each the "type" member of its leaf: a
// finished export's record, the sealed manifest of a ZIP export (both
// kept by the export's id), an audit event (by the event's), and a range
// of a run's steps (by StepsRecordID). A later format of a leaf gets a new
// name; leaves already written keep theirs.
const (
	ExportEntryType   = "runproof.export.v1"
	ManifestEntryType = "runproof.manifest.v1"
	AuditEntryType    = "runproof.audit.v1"
	StepsEntryType    = "runproof.steps.v1"
)

// StepsRecordID is the record id of the steps entry of a run's steps from
// index from on: the run's id and from, one entry each.
func StepsRecordID(runID string, from int64) string { return runID + "/" + strconv.FormatInt(from, 10) }

// StepsRange is a run's steps from index From to To (excluded).
type StepsRange struct {
	RunID    string
	From, To int64
}

// RunSeal is how far a run's steps are sealed in its tenant's ledger, as
// the store counts them (Sealed), and how many the run holds (Stored).
type RunSeal struct {
	RunID          string
	Sealed, Stored int64
}

// LedgerEntry is one leaf of a tenant's ledger: the canonical bytes that
// record one finished export, the sealed manifest of a ZIP export, one
// audit event, or one range of a run's steps. An export has at most one
// entry of each type, an audit event and a range one. (The stores keep
// RecordID in a column named export_id, from when exports were all the
// ledger held.)
type LedgerEntry struct {
	TenantID  string
	Index     int64  // leaf index, from 0, without gaps
	RecordID  string // what the entry records: the export's id, the audit event's, or the range's (StepsRecordID)
	Type      string // the leaf's format, as its "type" member says
	Data      []byte
	CreatedAt time.Time // when it was appended
	// Seals, for a steps entry being appended, is the range of the run's
	// steps it seals: the store records that the run's steps are sealed up
	// to its end in the same transaction.
	Seals *StepsRange
}

// LedgerRecord is a ledger entry with the export record its leaf is
// rebuilt from, as `ledger verify` reads them a page at a time.
type LedgerRecord struct {
	LedgerEntry // without CreatedAt, which no leaf holds
	// Export is the record of the export the entry names, folded from its
	// request and its sealed, completed and failed events: without its
	// delivery, artifact, step counts and remediation status, which no
	// leaf holds. Nil when the export has no request, as for an audit
	// event's entry.
	Export *Export
}

// FoldLedgerRecords sets the tenant of records read from a store and
// folds the request of each with its events (of any of the records'
// exports, in any order).
func FoldLedgerRecords(tenantID string, recs []LedgerRecord, events []ExportEvent) []LedgerRecord {
	byExport := make(map[string][]ExportEvent, len(recs))
	for _, e := range events {
		byExport[e.ExportID] = append(byExport[e.ExportID], e)
	}
	for i := range recs {
		recs[i].TenantID = tenantID
		if x := recs[i].Export; x != nil {
			x.TenantID = tenantID
			*x = FoldExport(x.ExportRequest, byExport[x.ID])
		}
	}
	return recs
}

// LedgerHash is one stored hash of the tree, at its stored hash index
// (tlog.StoredHashIndex).
type LedgerHash struct {
	Index int64
	Hash  [LedgerHashSize]byte
}

// OrderLedgerHashes returns the stored hashes found, by index, in the
// order of indexes: a store reads them in one query, in any order. One
// missing, or not of LedgerHashSize bytes, is ENOTFOUND.
func OrderLedgerHashes(tenantID string, indexes []int64, found map[int64][]byte) ([][LedgerHashSize]byte, error) {
	out := make([][LedgerHashSize]byte, len(indexes))
	for i, idx := range indexes {
		h, ok := found[idx]
		if !ok || len(h) != LedgerHashSize {
			return nil, Errorf(ENOTFOUND, "ledger hash %d of tenant %q is missing", idx, tenantID)
		}
		copy(out[i][:], h)
	}
	return out, nil
}

// LedgerCheckpoint is a signed tree head: the tree of the first Size
// entries, its hash, and the signed note that says so.
type LedgerCheckpoint struct {
	TenantID    string
	Size        int64
	Hash        [LedgerHashSize]byte
	Note        []byte // signed note
	VerifierKey string // the note verifier key of the key that signed it
	CreatedAt   time.Time
}

// LedgerState is what AppendLedger hands to its function: the tenant's log
// as it stands, read under the log's lock.
type LedgerState struct {
	// Size is one more than the highest entry index (0 when empty).
	Size int64
	// Latest is the checkpoint of the largest size, nil when none.
	Latest *LedgerCheckpoint
	// ReadHashes reads stored hashes inside the transaction, in the order
	// asked; a missing one is an error.
	ReadHashes func(indexes []int64) ([][LedgerHashSize]byte, error)
}

// LedgerAppend is what AppendLedger writes, all or nothing.
type LedgerAppend struct {
	Entries    []LedgerEntry
	Hashes     []LedgerHash
	Checkpoint LedgerCheckpoint
}

// LedgerStore keeps the export ledger. Both engines implement it and pass
// the same conformance suite.
type LedgerStore interface {
	// AppendLedger locks the tenant's log against every other append, in
	// this process and in others on the same database, loads its state and
	// calls fn; what fn returns is written in the same transaction, where
	// the audit events of audit entries stop waiting (AuditEventsToSeal)
	// and the steps of steps entries count as sealed (StepsToSeal).
	// If fn fails, nothing is written and its error is returned. ECONFLICT
	// when an entry's index, or its export and type, is already in the log.
	AppendLedger(ctx context.Context, tenantID string, fn func(LedgerState) (LedgerAppend, error)) error
	// LedgerEntries returns the entries with index in [from, to), in index
	// order.
	LedgerEntries(ctx context.Context, tenantID string, from, to int64) ([]LedgerEntry, error)
	// FirstRepeatedLedgerEntry returns the lowest index of an entry whose
	// export (or audit event) and type an entry of lower index has too, or
	// -1 when there is none. The store refuses such an entry (ECONFLICT),
	// so one is there only if written behind its back.
	FirstRepeatedLedgerEntry(ctx context.Context, tenantID string) (int64, error)
	// LedgerRecords returns the entries with index in [from, to), in
	// index order, each with its export record (LedgerRecord).
	LedgerRecords(ctx context.Context, tenantID string, from, to int64) ([]LedgerRecord, error)
	// ExportsMissingFromLedger returns the tenant's exports that completed
	// or failed, before a time unless it is zero, and have no entry of
	// ExportEntryType, in any order, folded as GetExport folds them.
	ExportsMissingFromLedger(ctx context.Context, tenantID string, before time.Time) ([]Export, error)
	// ExportTenantsFinishedSince lists the tenants with exports that
	// completed or failed since a position in the store's order of export
	// events (0: ever), in byte order, and the position to take up from
	// next time. Across tenants by design: which tenants to sync.
	ExportTenantsFinishedSince(ctx context.Context, since int64) (tenants []string, next int64, err error)
	// SealedExportsMissingFromLedger returns the tenant's exports that
	// were sealed and completed and have no entry of entryType (the sealed
	// manifest's), in any order, folded as GetExport folds them.
	SealedExportsMissingFromLedger(ctx context.Context, tenantID, entryType string) ([]Export, error)
	// LedgerEntryByRecord returns the entry of a type of the record (an
	// export, an audit event or a range of steps) of an id (ENOTFOUND).
	LedgerEntryByRecord(ctx context.Context, tenantID, recordID, entryType string) (LedgerEntry, error)
	// LedgerHashes returns the stored hashes at indexes, in that order
	// (ENOTFOUND when one is missing).
	LedgerHashes(ctx context.Context, tenantID string, indexes []int64) ([][LedgerHashSize]byte, error)
	// LedgerCheckpoint returns the checkpoint of a size, or the latest one
	// when size is 0 (ENOTFOUND).
	LedgerCheckpoint(ctx context.Context, tenantID string, size int64) (LedgerCheckpoint, error)
	// LedgerCheckpoints returns up to limit checkpoints of size above
	// after, smallest first.
	LedgerCheckpoints(ctx context.Context, tenantID string, after int64, limit int) ([]LedgerCheckpoint, error)
	// LedgerTenants lists the tenants that have a ledger, in byte order.
	LedgerTenants(ctx context.Context) ([]string, error)

	// LedgerAuditEvents returns the audit events of the audit entries
	// (AuditEntryType) with index in [from, to), each once, in any order.
	LedgerAuditEvents(ctx context.Context, tenantID string, from, to int64) ([]AuditEvent, error)
	// AuditEventsToSeal returns up to limit of the tenant's audit events
	// that wait for their ledger entry, oldest first (occurred_at, then
	// id). An event waits from the transaction that stores it to the one
	// that appends its entry (AppendLedger).
	AuditEventsToSeal(ctx context.Context, tenantID string, limit int) ([]AuditEvent, error)
	// AuditTenantsToSeal lists the tenants with audit events that wait
	// for their ledger entry, in byte order.
	AuditTenantsToSeal(ctx context.Context) ([]string, error)
	// StepsToSeal returns the seals of up to limit of the tenant's runs of
	// id above after with steps that no steps entry seals yet, in run id
	// order.
	StepsToSeal(ctx context.Context, tenantID, after string, limit int) ([]RunSeal, error)
	// StepsSealed returns the seals of up to limit of the tenant's runs
	// of id above after that have steps or sealed steps, in run id order
	// (a seal whose run is gone, with none stored).
	StepsSealed(ctx context.Context, tenantID, after string, limit int) ([]RunSeal, error)
	// StepsTenantsToSeal lists the tenants with steps that no steps entry
	// seals yet, in byte order.
	StepsTenantsToSeal(ctx context.Context) ([]string, error)
	// AuditEventsMissingFromLedger returns up to limit of the tenant's
	// audit events that neither have a ledger entry nor wait for one:
	// events stored behind the store's back. Oldest first.
	AuditEventsMissingFromLedger(ctx context.Context, tenantID string, limit int) ([]AuditEvent, error)
}

// MissingAuditEvents is the error of audit events that wait for their
// ledger entry (ids) but are not among those read (events): deleted behind
// the store's back before they were sealed. Without it they would hold
// their places in every batch, and no later event would be sealed.
func MissingAuditEvents(ids []string, events []AuditEvent) error {
	if len(events) == len(ids) {
		return nil
	}
	found := make(map[string]bool, len(events))
	for _, ev := range events {
		found[ev.ID] = true
	}
	var missing []string
	for _, id := range ids {
		if !found[id] {
			missing = append(missing, id)
		}
	}
	return fmt.Errorf("%d audit events wait for the ledger but are gone from the audit log (deleted behind runproof's back), among them %s",
		len(missing), strings.Join(missing[:min(len(missing), 5)], ", "))
}
