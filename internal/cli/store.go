package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/migrate"
	"github.com/runproof/runproof/internal/store/postgres"
	"github.com/runproof/runproof/internal/store/sqlite"
)

// database is a store of either engine, as the commands open it.
type database interface {
	runproof.Store
	Migrate(context.Context) error
	SchemaVersion(context.Context) (int64, error)
	LatestSchema() int64 // the version Migrate brings the schema to
	// Warnings says what of the database's settings runproof would
	// suffer from.
	Warnings(context.Context) ([]string, error)
	// DamagedTriggers returns the triggers Migrate creates that the
	// database lacks, has disabled or has otherwise.
	DamagedTriggers(context.Context) ([]migrate.Trigger, error)
}

// damagedTriggers says which of the triggers that guard runproof's records
// the database lacks or has otherwise than its migrations create them, or
// "" when none.
func damagedTriggers(ctx context.Context, store database) (string, error) {
	damaged, err := store.DamagedTriggers(ctx)
	if err != nil || len(damaged) == 0 {
		return "", err
	}
	names := make([]string, len(damaged))
	for i, t := range damaged {
		names[i] = fmt.Sprintf("%s on %s (migration %s)", t.Name, t.Table, t.Migration)
	}
	are := "are"
	if len(damaged) == 1 {
		are = "is"
	}
	return fmt.Sprintf("%d of the database's guard triggers %s gone, disabled or changed: %s. The rows they guard can be changed "+
		"behind runproof's back: find out who did it, and create them again as those migrations do",
		len(damaged), are, strings.Join(names, ", ")), nil
}

// openStore opens the store the flags select and applies its migrations,
// so that every command works on a fresh data directory.
func openStore(ctx context.Context, e *env) (database, error) {
	store, err := openDatabase(ctx, e.common)
	if err != nil {
		return nil, err
	}
	if _, err := migrateStore(ctx, e, store); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

// openDatabase opens the store the flags select, as it is.
func openDatabase(ctx context.Context, c common) (database, error) {
	var (
		store database
		err   error
	)
	// Checked here, not with the other flags: commands that open no store
	// (verify, version) ignore a stray $RUNPROOF_DATABASE_URL.
	if err := c.checkDatabase(); err != nil {
		return nil, err
	}
	if err := checkDataDir(c.data, c.engine() == engineSQLite); err != nil {
		return nil, err
	}
	switch c.engine() {
	case enginePostgres:
		store, err = postgres.Open(ctx, c.database)
		if err != nil {
			return nil, fmt.Errorf("cannot open the PostgreSQL database of --database: %w", err)
		}
	default:
		if err := c.checkServedBefore(); err != nil {
			return nil, err
		}
		path := c.sqlitePath()
		store, err = sqlite.Open(ctx, path)
		if why := sqlite.Unusable(err); why != "" {
			return nil, fmt.Errorf("cannot use %s: %s", path, why)
		} else if err != nil {
			return nil, fmt.Errorf("cannot open %s: %w", path, err)
		}
	}
	return store, nil
}

// checkDataDir refuses a data directory whose parent does not exist: a
// mistyped --data (/srv/runproof-dta/x), which would be made a new, empty
// one (with the signing keys and artifacts, and with SQLite the
// database). With create, it makes the directory (0700: what it holds
// is the tenants'); without, it leaves that to the first command that
// writes there (the signing keys, the artifacts).
func checkDataDir(dir string, create bool) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot create the data directory %s (--data): %s does not exist; create it first, or give --data "+
			"the data directory runproof serve uses", dir, parent)
	}
	if !create {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cannot create the data directory (--data): %w", err)
	}
	return nil
}

// checkServedBefore refuses to begin the SQLite database in a data
// directory that a server has signed from (signing-keys/uses) but that
// holds none: its server used PostgreSQL, and the database URL is missing
// (a restart that lost its environment, say), or the database went. A new,
// empty one would answer every key 401, or hold what a command meant for
// the other.
func (c *common) checkServedBefore() error {
	if _, err := os.Stat(c.sqlitePath()); !errors.Is(err, fs.ErrNotExist) || !signing.Served(filepath.Join(c.data, "signing-keys")) {
		return nil
	}
	return fmt.Errorf("no runproof database at %s, but a server has signed from %s before: if it used PostgreSQL, "+
		"set %s (or --database) to its URL; to start afresh on SQLite, give --data a new directory", c.sqlitePath(), c.data, DatabaseURLEnv)
}

// openRecorded opens the store of a command that works on what runproof
// has recorded (export, ledger verify, keys list and revoke). A data
// directory without a database is refused rather than made: it is most
// likely not the one --data was meant to name, and an empty database
// would answer "nothing there" or "no such incident".
func openRecorded(ctx context.Context, e *env) (database, error) {
	if e.engine() == engineSQLite {
		path := e.sqlitePath()
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no runproof database at %s: give --data the data directory runproof serve uses (or --database its PostgreSQL URL)", path)
		}
	}
	return openStore(ctx, e)
}

// migrateStore applies the store's migrations, which bring it to its
// LatestSchema, and returns the version it was at. Upgrading a database
// that holds a schema is logged first and when done: a migration may
// rewrite every step, minutes on a large database.
func migrateStore(ctx context.Context, e *env, store database) (before int64, err error) {
	before, verr := store.SchemaVersion(ctx)
	latest := store.LatestSchema()
	if before > 0 && before < latest {
		e.log.Info("upgrading the database schema: this can take minutes on a large database; do not stop it",
			slog.String("engine", e.engine()), slog.Int64("from", before), slog.Int64("to", latest))
	}
	start := time.Now()
	if err := store.Migrate(ctx); err != nil {
		if why := sqlite.Unusable(err); why != "" && e.engine() == engineSQLite {
			return before, fmt.Errorf("cannot use %s: %s", e.sqlitePath(), why)
		}
		if ctx.Err() != nil { // the driver's words for it read as damage
			return before, fmt.Errorf("the %s schema's migration was interrupted: each step is applied whole or not at all, "+
				"so run the command again to finish it", e.engine())
		}
		return before, fmt.Errorf("cannot migrate the %s schema: %w", e.engine(), err)
	}
	if verr != nil { // Migrate, which reads it too, says what is wrong better
		return before, verr
	}
	if before > 0 && before < latest {
		e.log.Info("database schema upgraded", slog.Int64("to", latest), slog.Duration("took", time.Since(start).Round(time.Millisecond)))
	}
	return before, nil
}
