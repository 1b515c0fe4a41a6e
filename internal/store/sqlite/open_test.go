package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// TestOpenSettings checks that every connection gets the settings Open
// asks for, in a directory Open has to create.
func TestOpenSettings(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "new", "dir", "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "1", // NORMAL
		"foreign_keys": "1",
		"busy_timeout": "10000",
	} {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

// TestBusyIsUnavailable: a write refused because another process holds
// the write lock past the busy timeout is the database away for now (503
// with Retry-After, audit events written again), not an internal error.
func TestBusyIsUnavailable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runproof.db")
	s := openMigratedAt(t, path)
	tx, err := s.w.BeginTx(ctx, nil) // takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.ExecContext(ctx, `INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t', 's', '[]', '2026-01-02T15:04:05.000000Z')`)
	if err == nil {
		t.Fatal("a second writer wrote while the first held the lock")
	}
	err = fmt.Errorf("create run: %w", err)
	if code, msg := runproof.ErrorCode(err), runproof.ErrorMessage(err); code != runproof.EUNAVAILABLE || !strings.Contains(msg, "busy") {
		t.Errorf("%v: code %s, message %q; want %s, busy", err, code, msg, runproof.EUNAVAILABLE)
	}
}

// TestFullIsUnavailable: a write refused because the database cannot grow
// (its disk is full; here, its page count is at its most) is a 503 to
// retry once space is freed, not an internal error.
func TestFullIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	var pages int64
	if err := s.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t', 's', ?, '2026-01-02T15:04:05.000000Z')`,
		strings.Repeat("x", 1<<20))
	if err == nil {
		t.Fatal("a write past the database's most pages succeeded")
	}
	err = fmt.Errorf("create run: %w", err)
	if code, msg := runproof.ErrorCode(err), runproof.ErrorMessage(err); code != runproof.EUNAVAILABLE || !strings.Contains(msg, "disk is full") {
		t.Errorf("%v: code %s, message %q; want %s, disk is full", err, code, msg, runproof.EUNAVAILABLE)
	}
}

// TestOpenPrivate: a new database and its WAL files are the owner's alone,
// even in a directory others may read.
func TestOpenPrivate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "runproof.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(ctx, runproof.APIKey{ID: "k", TenantID: "t", Role: runproof.RoleAdmin, Name: "n",
		Hash: "sha256:00", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(name), mode)
		}
	}
}

// TestLedgerAppendDurable: a ledger append, which commits with synchronous
// FULL, leaves the writer as it found it, NORMAL, for the store's other
// writes, whether it is written, refused, or its context ends on the way.
func TestLedgerAppendDurable(t *testing.T) {
	s := openMigratedAt(t, filepath.Join(t.TempDir(), "runproof.db"))
	for i := range 400 {
		fail, gone := i > 0, i > 1 // written once, then refused, then refused with its context ended
		ctx, cancel := context.WithCancel(context.Background())
		if i >= 200 { // or ended at any moment of the append
			ctx, cancel = context.WithTimeout(context.Background(), time.Duration(i-200)*500*time.Nanosecond)
		}
		err := s.AppendLedger(ctx, "acme", func(st runproof.LedgerState) (runproof.LedgerAppend, error) {
			if gone {
				cancel() // the request went away mid-append
			}
			if fail {
				return runproof.LedgerAppend{}, fmt.Errorf("refused")
			}
			return runproof.LedgerAppend{
				Entries: []runproof.LedgerEntry{{TenantID: "acme", Index: 0, RecordID: "x1", Type: "runproof.export.v1",
					Data: []byte("{}"), CreatedAt: time.Now()}},
				Hashes:     []runproof.LedgerHash{{Index: 0}},
				Checkpoint: runproof.LedgerCheckpoint{TenantID: "acme", Size: 1, Note: []byte("n"), VerifierKey: "k", CreatedAt: time.Now()},
			}, nil
		})
		cancel()
		if (err != nil) != fail && i < 200 {
			t.Fatalf("append %d: %v", i, err)
		}
		var got string
		if err := s.w.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != "1" {
			t.Fatalf("after append %d (refused %v, its context ended %v): synchronous %s, want 1 (NORMAL)", i, fail, gone, got)
		}
	}
}
