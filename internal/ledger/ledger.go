package ledger

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

// OriginPrefix starts the origin line of a checkpoint; the tenant id ends
// it, so that a checkpoint names the one log it signs.
const OriginPrefix = "runproof/ledger/"

// Origin is the origin line of the checkpoints of a tenant's log.
func Origin(tenantID string) string { return OriginPrefix + tenantID }

// ErrDiverged is returned by an append that finds the stored tree no longer
// hashing to its last signed checkpoint: nothing more is signed over it.
var ErrDiverged = errors.New("the ledger no longer matches its last signed checkpoint: nothing was appended; run `runproof ledger verify`")

// Options tune a Ledger; zero values take defaults.
type Options struct {
	// Verifiers are the verifier keys of earlier signing keys, whose
	// checkpoints Verify still accepts after a key change.
	Verifiers []string
	// NewVerifiers, when set, is asked for verifier keys when the latest
	// checkpoint is signed by none the ledger knows: another process may
	// have rotated the signing key and appended since. The keys it returns
	// are known from then on.
	NewVerifiers func() ([]string, error)
	Now          func() time.Time
	// SyncBatch is how many missing exports Sync appends under one
	// checkpoint (default 1000).
	SyncBatch int
}

// Store is what a Ledger keeps its logs in, and reads an export from when
// it is asked for a proof the log does not hold.
type Store interface {
	runproof.LedgerStore
	StepReader
	GetExport(ctx context.Context, tenantID, exportID string) (runproof.Export, error)
}

// Ledger appends finished exports, sealed ZIP manifests, audit events and
// ranges of runs' steps to their tenant's log, and proves what it holds.
// Create it with New. It is safe for concurrent use, also by several
// processes over one database.
type Ledger struct {
	store        Store
	signer       note.Signer
	vkey         string
	newVerifiers func() ([]string, error)
	now          func() time.Time
	syncBatch    int // Options.SyncBatch

	mu        sync.Mutex
	verifiers []string // the known verifier keys, the ledger's own first

	unsealed atomic.Int64 // tenants the last pass of Seal could not seal (Unsealed)
}

// New returns a ledger over store whose checkpoints are signed with key
// under keyName, the signer name of the notes (no spaces or '+', e.g.
// "runproof.example.com"). The caller keeps the key.
func New(store Store, key ed25519.PrivateKey, keyName string, opts Options) (*Ledger, error) {
	signer, vkey, err := newSigner(key, keyName)
	if err != nil {
		return nil, err
	}
	l := &Ledger{store: store, signer: signer, vkey: vkey, verifiers: append([]string{vkey}, opts.Verifiers...),
		newVerifiers: opts.NewVerifiers, now: opts.Now, syncBatch: opts.SyncBatch}
	if l.now == nil {
		l.now = time.Now
	}
	if l.syncBatch <= 0 {
		l.syncBatch = 1000
	}
	return l, nil
}

// VerifierKey returns the note verifier key of the signing key, to
// publish: "<name>+<hash>+<base64 key>".
func (l *Ledger) VerifierKey() string { return l.vkey }

// ed25519Signer signs notes with a key the caller holds.
type ed25519Signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *ed25519Signer) Name() string                    { return s.name }
func (s *ed25519Signer) KeyHash() uint32                 { return s.hash }
func (s *ed25519Signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// VerifierKey is the note verifier key of the checkpoints signed with the
// private half of pub, named by its key id (signing.KeyID):
// "ed25519:0123456789abcdef+<hash>+<key>".
func VerifierKey(pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(signing.KeyID(pub), pub)
}

func newSigner(key ed25519.PrivateKey, name string) (note.Signer, string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, "", fmt.Errorf("ledger: the signing key must be an Ed25519 private key of %d bytes, not %d", ed25519.PrivateKeySize, len(key))
	}
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, "", fmt.Errorf("ledger: %w", err)
	}
	v, err := note.NewVerifier(vkey) // also checks the name
	if err != nil {
		return nil, "", fmt.Errorf("ledger: key name %q: %w", name, err)
	}
	return &ed25519Signer{name: name, hash: v.KeyHash(), key: key}, vkey, nil
}

// checkTenant refuses a tenant id that cannot end an origin line.
func checkTenant(tenantID string) error {
	if tenantID == "" || strings.ContainsFunc(tenantID, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\uFFFD' }) {
		return runproof.Errorf(runproof.EINVALID, "tenant id %q cannot name a ledger", tenantID)
	}
	return nil
}

// checkpointText is the signed text of a checkpoint: tlog.FormatTree's
// three lines (which tlog.ParseTree reads, ignoring what follows), then
// the origin line.
func checkpointText(origin string, tree tlog.Tree) []byte {
	return append(tlog.FormatTree(tree), origin+"\n"...)
}

// OpenCheckpoint checks a signed checkpoint against verifier keys and
// returns its origin line and the tree it signs.
func OpenCheckpoint(msg []byte, verifierKeys ...string) (origin string, tree tlog.Tree, err error) {
	vs, err := newVerifiers(verifierKeys)
	if err != nil {
		return "", tree, err
	}
	return openCheckpoint(msg, vs)
}

// newVerifiers parses note verifier keys.
func newVerifiers(keys []string) (note.Verifiers, error) {
	vs := make([]note.Verifier, 0, len(keys))
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] { // a key given twice is one key, not an ambiguous pair
			continue
		}
		seen[k] = true
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// openCheckpoint is OpenCheckpoint with the verifiers parsed.
func openCheckpoint(msg []byte, known note.Verifiers) (origin string, tree tlog.Tree, err error) {
	n, err := note.Open(msg, known)
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		return "", tree, &UnknownSignerError{Signers: signers(unverified.Note)}
	} else if err != nil {
		return "", tree, fmt.Errorf("checkpoint signature: %w", err)
	}
	if len(n.UnverifiedSigs) > 0 {
		// runproof signs a checkpoint once: another line was added to it.
		return "", tree, fmt.Errorf("checkpoint bears a signature of a key it is not checked with, which runproof does not add: %s",
			strings.Join(signers(n), ", "))
	}
	return checkpointTree(n.Text)
}

// An UnknownSignerError is a checkpoint that none of the keys it is
// checked with signed: it was signed with another key, or re-signed.
type UnknownSignerError struct {
	Signers []string // the keys that signed it: key id and key hash
}

func (e *UnknownSignerError) Error() string {
	if len(e.Signers) == 0 {
		return "checkpoint not signed by a known key: it bears no signature"
	}
	return fmt.Sprintf("checkpoint not signed by a known key: it is signed by %s", strings.Join(e.Signers, ", "))
}

// signers names the keys that signed a note: their key ids, as the
// signing keys are listed, with the hash of the key itself, which tells a
// key apart from another that took its name.
func signers(n *note.Note) []string {
	out := make([]string, len(n.UnverifiedSigs))
	for i, s := range n.UnverifiedSigs {
		out[i] = fmt.Sprintf("%s (key hash %08x)", s.Name, s.Hash)
	}
	return out
}

// readCheckpoint reads a checkpoint's origin line and tree without
// checking its signature: only that the note is well formed.
func readCheckpoint(msg []byte) (origin string, tree tlog.Tree, err error) {
	_, err = note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return "", tree, fmt.Errorf("checkpoint: %w", err)
	}
	return checkpointTree(unverified.Note.Text)
}

// CheckpointTenant returns the tenant whose log a signed checkpoint is
// of, read from its origin line without checking its signature, or ""
// when msg is not a checkpoint of a runproof ledger.
func CheckpointTenant(msg []byte) string {
	origin, _, err := readCheckpoint(msg)
	if err != nil {
		return ""
	}
	tenant, _ := strings.CutPrefix(origin, OriginPrefix)
	if tenant == origin {
		return ""
	}
	return tenant
}

// checkpointTree reads the tree and the origin line of a checkpoint's text.
func checkpointTree(text string) (origin string, tree tlog.Tree, err error) {
	if tree, err = tlog.ParseTree([]byte(text)); err != nil {
		return "", tree, fmt.Errorf("checkpoint: %w", err)
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 5 || lines[3] == "" {
		return "", tree, errors.New("checkpoint: no origin line")
	}
	return lines[3], tree, nil
}

// Append adds a finished export to its tenant's log and returns its index.
// Appending an export already in the log returns its index again.
func (l *Ledger) Append(ctx context.Context, rec runproof.Export) (int64, error) {
	idx, err := l.AppendBatch(ctx, rec.TenantID, []runproof.Export{rec})
	if err != nil {
		return -1, err
	}
	return idx[0], nil
}

// AppendManifest adds the sealed manifest of a ZIP export to its tenant's
// log and returns its index: the leaf ManifestEntryFor makes of the
// record, which ManifestLeaf makes of the manifest.json it seals. The
// export need not be finished. Appending it again returns its index again.
func (l *Ledger) AppendManifest(ctx context.Context, rec runproof.Export) (int64, error) {
	if err := checkTenant(rec.TenantID); err != nil {
		return -1, err
	}
	data, err := manifestLeafBytes(rec)
	if err != nil {
		return -1, err
	}
	idx, err := l.appendLeaves(ctx, rec.TenantID, []leaf{{recordID: rec.ID, typ: ManifestEntryType, data: data}})
	if err != nil {
		return -1, err
	}
	return idx[0], nil
}

// AppendBatch adds finished exports of one tenant in order, under one
// signed checkpoint, and returns their indexes. Exports already in the log
// keep their index; one in the log with other content is ECONFLICT. An
// empty batch appends nothing and signs no checkpoint.
func (l *Ledger) AppendBatch(ctx context.Context, tenantID string, recs []runproof.Export) ([]int64, error) {
	if err := checkTenant(tenantID); err != nil {
		return nil, err
	}
	leaves := make([]leaf, len(recs))
	for i, rec := range recs {
		if rec.TenantID != tenantID {
			return nil, runproof.Errorf(runproof.EINVALID, "export %s belongs to tenant %q, not %q", rec.ID, rec.TenantID, tenantID)
		}
		data, err := leafBytes(rec)
		if err != nil {
			return nil, err
		}
		leaves[i] = leaf{recordID: rec.ID, typ: ExportEntryType, data: data}
	}
	return l.appendLeaves(ctx, tenantID, leaves)
}

// leaf is a leaf to append: a record (an export, an audit event) has at
// most one of each type.
type leaf struct {
	recordID, typ string
	data          []byte
	seals         *runproof.StepsRange // of a steps entry
}

// appendLeaves appends the leaves not yet in the log. Leaves are nearly
// always new, so they are appended at once; only when one of them is in
// the log already (appended again, or by a concurrent append) is each one
// looked up, and those found keep their index. A concurrent append of the
// same leaf can make that second try conflict too; the third finds it.
func (l *Ledger) appendLeaves(ctx context.Context, tenantID string, leaves []leaf) ([]int64, error) {
	if len(leaves) == 0 {
		return nil, nil // nothing to append, and no checkpoint to sign
	}
	all := make([]int, len(leaves))
	for i := range all {
		all[i] = i
	}
	out := make([]int64, len(leaves))
	err := l.write(ctx, tenantID, leaves, all, out)
	for try := 0; runproof.ErrorCode(err) == runproof.ECONFLICT && try < 2; try++ {
		var todo []int
		if todo, err = l.missing(ctx, tenantID, leaves, out); err == nil && len(todo) > 0 {
			err = l.write(ctx, tenantID, leaves, todo, out)
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// missing looks each leaf up: it sets the index of those in the log in out
// and returns the positions of the others. One in the log with other
// content is ECONFLICT.
func (l *Ledger) missing(ctx context.Context, tenantID string, leaves []leaf, out []int64) ([]int, error) {
	var todo []int
	for i, lf := range leaves {
		e, err := l.store.LedgerEntryByRecord(ctx, tenantID, lf.recordID, lf.typ)
		switch {
		case err == nil && bytes.Equal(e.Data, lf.data):
			out[i] = e.Index
		case err == nil:
			return nil, runproof.Errorf(runproof.ECONFLICT, "the %s entry of %s is already in the ledger (entry %d) with other content", lf.typ, lf.recordID, e.Index)
		case runproof.ErrorCode(err) == runproof.ENOTFOUND:
			todo = append(todo, i)
		default:
			return nil, err
		}
	}
	return todo, nil
}

// write appends the leaves at the positions todo, in order, under one new
// checkpoint, and sets their indexes in out.
func (l *Ledger) write(ctx context.Context, tenantID string, leaves []leaf, todo []int, out []int64) error {
	return l.store.AppendLedger(ctx, tenantID, func(st runproof.LedgerState) (runproof.LedgerAppend, error) {
		var a runproof.LedgerAppend
		r := &pendingReader{read: st.ReadHashes, pending: map[int64]tlog.Hash{}}
		if err := l.checkHead(tenantID, st, r); err != nil {
			return a, fmt.Errorf("ledger of tenant %q: %w", tenantID, err)
		}
		now := runproof.Timestamp(l.now())
		for k, i := range todo {
			n := st.Size + int64(k)
			hashes, err := tlog.StoredHashes(n, leaves[i].data, r)
			if err != nil {
				return a, fmt.Errorf("ledger: entry %d: %w", n, err)
			}
			base := tlog.StoredHashIndex(0, n)
			for j, h := range hashes {
				r.pending[base+int64(j)] = h
				a.Hashes = append(a.Hashes, runproof.LedgerHash{Index: base + int64(j), Hash: h})
			}
			a.Entries = append(a.Entries, runproof.LedgerEntry{TenantID: tenantID, Index: n, RecordID: leaves[i].recordID,
				Type: leaves[i].typ, Data: leaves[i].data, CreatedAt: now, Seals: leaves[i].seals})
			out[i] = n
		}
		tree := tlog.Tree{N: st.Size + int64(len(todo))}
		var err error
		if tree.Hash, err = tlog.TreeHash(tree.N, r); err != nil {
			return a, fmt.Errorf("ledger: tree hash: %w", err)
		}
		msg, err := note.Sign(&note.Note{Text: string(checkpointText(Origin(tenantID), tree))}, l.signer)
		if err != nil {
			return a, fmt.Errorf("ledger: sign checkpoint: %w", err)
		}
		a.Checkpoint = runproof.LedgerCheckpoint{TenantID: tenantID, Size: tree.N, Hash: tree.Hash, Note: msg,
			VerifierKey: l.vkey, CreatedAt: now}
		return a, nil
	})
}

// VerifierKeys returns the verifier keys whose checkpoints the ledger
// accepts: its own first, then those it was given or has learned.
func (l *Ledger) VerifierKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.verifiers)
}

// learn asks NewVerifiers for verifier keys and keeps the new ones.
func (l *Ledger) learn() error {
	if l.newVerifiers == nil {
		return nil
	}
	keys, err := l.newVerifiers()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if !slices.Contains(l.verifiers, k) {
			l.verifiers = append(l.verifiers, k)
		}
	}
	return nil
}

// openHead opens a tenant's latest checkpoint with the keys this process
// knows, reading the signing keys again when another process may have
// made the one it is signed with. Signed by a key still unknown, it is an
// ECONFLICT that says what to do, for a user who changed keys.
func (l *Ledger) openHead(tenantID string, note []byte) (origin string, tree tlog.Tree, err error) {
	origin, tree, err = OpenCheckpoint(note, l.VerifierKeys()...)
	var unknown *UnknownSignerError
	if errors.As(err, &unknown) {
		if lerr := l.learn(); lerr != nil {
			return "", tree, fmt.Errorf("the latest checkpoint is signed by a key this process does not know, and the signing keys could not be read again: %w", lerr)
		}
		// Again, even if this call learned nothing: a call at the same
		// time may have learned the key.
		origin, tree, err = OpenCheckpoint(note, l.VerifierKeys()...)
	}
	if errors.As(err, &unknown) && len(unknown.Signers) > 0 {
		return "", tree, runproof.Errorf(runproof.ECONFLICT,
			"the latest checkpoint of the ledger of tenant %q is signed by key %s, which this runproof does not know, so nothing can be appended: "+
				"is --data the server's data directory, which holds its signing keys (also with PostgreSQL)? If the key is yours, give it again (--signing-key) "+
				"or put it back in the signing-keys directory; if not, run `runproof ledger verify` with the same --data",
			tenantID, unknown.Signers[0])
	}
	return origin, tree, err
}

// Ready refuses (ECONFLICT) what cannot be appended to a tenant's log
// because its latest checkpoint is signed by a key this process does not
// know: an export that asks first is refused before it is made, rather
// than made and left out of the log.
func (l *Ledger) Ready(ctx context.Context, tenantID string) error {
	latest, err := l.store.LedgerCheckpoint(ctx, tenantID, 0)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return nil // an empty log
	} else if err != nil {
		return err
	}
	_, _, err = l.openHead(tenantID, latest.Note)
	if runproof.ErrorCode(err) == runproof.ECONFLICT {
		return err
	}
	return nil // anything else is Append's to find and say
}

// checkHead makes sure the log is still the one last signed, in O(log n)
// reads: the latest checkpoint is signed by a known key for this log, and
// the stored tree has its size and hashes to its hash. A full check is
// Verify's job; this one keeps an append from signing over a tree that
// someone changed or signed with another key.
func (l *Ledger) checkHead(tenantID string, st runproof.LedgerState, r tlog.HashReader) error {
	if st.Latest == nil {
		if st.Size != 0 {
			return fmt.Errorf("%w (%d entries, no checkpoint)", ErrDiverged, st.Size)
		}
		return nil
	}
	origin, tree, err := l.openHead(tenantID, st.Latest.Note)
	switch {
	case runproof.ErrorCode(err) == runproof.ECONFLICT:
		return unknownHead{err}
	case unavailable(err):
		return fmt.Errorf("latest checkpoint: %w", err)
	case err != nil:
		return fmt.Errorf("%w (latest checkpoint: %v)", ErrDiverged, err)
	}
	if origin != Origin(tenantID) || tree.N != st.Latest.Size || tree.Hash != st.Latest.Hash {
		return fmt.Errorf("%w (the latest checkpoint's note does not sign its row)", ErrDiverged)
	}
	if tree.N != st.Size {
		return fmt.Errorf("%w (%d entries, checkpoint of size %d)", ErrDiverged, st.Size, tree.N)
	}
	th, err := tlog.TreeHash(st.Size, r)
	if unavailable(err) {
		return fmt.Errorf("tree hash of size %d: %w", st.Size, err)
	} else if err != nil {
		return fmt.Errorf("%w (%v)", ErrDiverged, err)
	}
	if th != tree.Hash {
		return fmt.Errorf("%w (tree hash of size %d differs)", ErrDiverged, st.Size)
	}
	return nil
}

// unknownHead is a latest checkpoint signed by a key this process does
// not know (openHead's ECONFLICT): the ledger diverged as far as the
// process can tell (ErrDiverged), but it says what openHead says, which is
// most likely a key left behind, and what to do.
type unknownHead struct{ err error }

func (e unknownHead) Error() string   { return e.err.Error() }
func (e unknownHead) Unwrap() []error { return []error{e.err, ErrDiverged} }

// pendingReader reads the hashes of an append not yet written from memory
// and the others from the store, in one query per call.
type pendingReader struct {
	read    func([]int64) ([][runproof.LedgerHashSize]byte, error)
	pending map[int64]tlog.Hash
}

func (r *pendingReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var stored []int64
	var at []int
	for i, idx := range indexes {
		if h, ok := r.pending[idx]; ok {
			out[i] = h
		} else {
			stored, at = append(stored, idx), append(at, i)
		}
	}
	if len(stored) > 0 {
		hs, err := r.read(stored)
		if err != nil {
			return nil, err
		}
		for k, h := range hs {
			out[at[k]] = h
		}
	}
	return out, nil
}

// unavailable reports whether err is a failure to read, to be retried,
// rather than anything the ledger holds: the database unavailable, or the
// call given up.
func unavailable(err error) bool {
	return runproof.ErrorCode(err) == runproof.EUNAVAILABLE || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// storeReader reads a tenant's stored hashes, one query per call.
func storeReader(ctx context.Context, s runproof.LedgerStore, tenantID string) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := s.LedgerHashes(ctx, tenantID, indexes)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(hs))
		for i, h := range hs {
			out[i] = h
		}
		return out, nil
	})
}

// Sync appends the tenant's finished exports that are missing from its
// log (an append that failed after the export finished), oldest first, a
// batch of up to Options.SyncBatch under each checkpoint, and returns how
// many it added. Exports already in the log are left as they are.
func (l *Ledger) Sync(ctx context.Context, tenantID string) (int, error) {
	missing, err := l.store.ExportsMissingFromLedger(ctx, tenantID, time.Time{})
	if err != nil {
		return 0, err
	}
	slices.SortFunc(missing, finishOrder)
	added := 0
	for batch := range slices.Chunk(missing, l.syncBatch) {
		if _, err := l.AppendBatch(ctx, tenantID, batch); err != nil {
			return added, err
		}
		added += len(batch)
	}
	return added, nil
}

// finishOrder orders finished exports as they finished.
func finishOrder(a, b runproof.Export) int {
	return cmp.Or(a.CompletedAt.Compare(*b.CompletedAt), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
}
