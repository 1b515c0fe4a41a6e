package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

// needKeys refuses a command that signs or checks with the data
// directory's keys when it holds none (and --signing-key is not given)
// while the database holds a ledger: whatever signed it is elsewhere, most
// likely in the data directory --data was meant to name, and a first key
// made here could neither append to it nor check it. keys says whether
// the data directory holds keys.
func needKeys(ctx context.Context, c common, store ledgerTenants, instead string) (keys bool, err error) {
	dir := filepath.Join(c.data, "signing-keys")
	if c.signingKey != "" {
		return true, nil
	}
	if has, err := signing.HasKeys(dir); has || err != nil {
		return has, err
	}
	tenants, err := store.LedgerTenants(ctx)
	if err != nil {
		return false, err
	}
	if len(tenants) > 0 {
		return false, fmt.Errorf("no signing keys in %s, but the database holds the ledger of %s, signed with keys kept elsewhere: "+
			"give --data the data directory runproof serve uses, which holds its keys also with PostgreSQL (or %s)", dir, tenants[0], instead)
	}
	return false, nil
}

// ledgerTenants is what needKeys asks the store.
type ledgerTenants interface {
	LedgerTenants(ctx context.Context) ([]string, error)
}

// exporting is what the commands that export work with.
type exporting struct {
	exporter *export.Exporter
	keys     *signing.Keyring
	ledger   *ledger.Ledger
}

// openExporter returns the exporter over store, keeping artifacts in
// DIR/artifacts of --data (also with PostgreSQL), signing with the keys of
// openKeys and recording every export in the ledger; it refuses a data
// directory without keys while the database holds a ledger (needKeys).
func openExporter(ctx context.Context, e *env, store runproof.Store) (exporting, error) {
	if _, err := needKeys(ctx, e.common, store, "--signing-key"); err != nil {
		return exporting{}, err
	}
	dir, err := artifact.NewDir(filepath.Join(e.data, "artifacts"))
	if err != nil {
		return exporting{}, fmt.Errorf("cannot create the artifact directory under --data: %w", err)
	}
	keys, err := openKeys(e)
	if err != nil {
		dir.Close()
		return exporting{}, err
	}
	led, err := newLedger(store, keys)
	if err != nil {
		dir.Close()
		return exporting{}, err
	}
	return exporting{exporter: export.New(store, dir, export.Options{Keys: keys, Ledger: led, Logger: e.log}),
		keys: keys, ledger: led}, nil
}

// openKeys returns the signing keys: those of DIR/signing-keys, with
// --signing-key, when given, as the active one; without it, a first key
// is created there on first use. It warns of a key file others may read.
func openKeys(e *env) (*signing.Keyring, error) {
	c := e.common
	dir := filepath.Join(c.data, "signing-keys")
	defer warnOpenKeys(e, dir)
	if c.signingKey == "" {
		keys, err := signing.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("cannot open the signing keys under --data: %w", err)
		}
		return keys, nil
	}
	k, err := signing.ReadKeyFile(c.signingKey)
	if err != nil { // a wrong flag
		return nil, usagef("--signing-key (or %s): %v", SigningKeyEnv, err)
	}
	keys, err := signing.OpenWith(dir, k)
	if err != nil {
		return nil, fmt.Errorf("cannot open the signing keys under --data: %w", err)
	}
	return keys, nil
}

// warnOpenDatabase warns of a SQLite database, and its WAL files, that
// users other than their owner may read, as one made by a runproof that
// did not make it 0600 is: it holds API key hashes, step content and
// audit events.
func warnOpenDatabase(e *env, path string) {
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(name); err == nil && fi.Mode().Perm()&0o077 != 0 {
			e.log.Warn("the database may be read by others: chmod 600 "+shellWord(path)+"*", slog.String("file", name),
				slog.String("mode", fmt.Sprintf("%#o", fi.Mode().Perm())))
		}
	}
}

// warnOpenDataDir warns of a data directory, or one of its directories
// (signing keys, artifacts), that users other than its owner may write to:
// whoever can may replace the signing keys, the database or an export's
// file.
func warnOpenDataDir(e *env, dir string) {
	for _, name := range []string{dir, filepath.Join(dir, "signing-keys"), filepath.Join(dir, "artifacts")} {
		if fi, err := os.Stat(name); err == nil && fi.Mode().Perm()&0o022 != 0 {
			e.log.Warn("others may write to the data directory: chmod go-w "+shellWord(name), slog.String("dir", name),
				slog.String("mode", fmt.Sprintf("%#o", fi.Mode().Perm())))
		}
	}
}

// warnOpenKeys warns of private key files (--signing-key, DIR/signing-keys)
// that users other than their owner may read: whoever reads one can sign
// bundles and checkpoints as this runproof.
func warnOpenKeys(e *env, dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	if e.signingKey != "" && !slices.Contains(names, e.signingKey) {
		names = append(names, e.signingKey)
	}
	for _, name := range names {
		fi, err := os.Stat(name)
		if err != nil || fi.Mode().Perm()&0o077 == 0 || strings.HasSuffix(name, ".pub.pem") {
			continue
		}
		if b, err := os.ReadFile(name); err != nil || !bytes.Contains(b, []byte("PRIVATE KEY")) {
			continue // a public key, say, given for a private one: the error says so
		}
		e.log.Warn("a private signing key may be read by others: chmod 600 it", slog.String("file", name),
			slog.String("mode", fmt.Sprintf("%#o", fi.Mode().Perm())))
	}
}
