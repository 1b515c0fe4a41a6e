package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a runproof.Store backed by one SQLite file.
type Store struct {
	db   *sql.DB // readers: a few connections, reading side by side (WAL)
	w    *sql.DB // the writer: one connection, taken in turn through line
	line line    // where this process's writes wait for the writer
	path string  // of the database file
}

var _ runproof.Store = (*Store)(nil)

// busyTimeout is how long a writer waits for the write lock another holds.
const busyTimeout = 10 * time.Second

// Open opens the database file at path, creating it and its directory if
// needed. path must name a file (not ":memory:", which would give every
// pooled connection its own empty database). Call Migrate before use.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// A new database is readable by its owner alone, whatever the umask
	// and the directory's mode: it holds key hashes and every agent's
	// content. SQLite gives its -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: %w", err)
	} else if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, errors.New("sqlite: it is a directory, not a database file: give --data runproof's data directory")
	}
	// Every connection gets the same settings. WAL lets readers run while
	// one writer writes; busy_timeout makes another process's writers wait
	// for the write lock instead of failing; _txlock=immediate takes the
	// write lock at BEGIN, so a transaction never fails half-way trying to
	// upgrade a read lock (and UpdateRun's read-then-write is serialised
	// per database).
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	dsn := path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// SQLite has one writer at a time. Writes of this process take turns on
	// one connection, waiting in line (see line: in Go, for as long as their
	// context lets them) rather than in busy_timeout's sleep-and-retry,
	// which under hundreds of concurrent requests let some wait past its
	// end and fail; busy_timeout is left for other processes' writes.
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(maxReaders)
	db.SetMaxIdleConns(maxReaders)
	s := &Store{db: db, w: w, path: path}
	// Switching a new database to WAL takes a lock SQLite does not wait
	// for: a process opening it while another does may be told it is busy.
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		err = errors.Join(db.PingContext(ctx), w.PingContext(ctx))
		if err == nil || !isBusy(err) || wait > time.Second {
			break
		}
		time.Sleep(wait)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// maxReaders bounds the connections that read at once; more readers would
// only take turns on the cores, each holding its own page cache.
var maxReaders = max(4, 2*runtime.GOMAXPROCS(0))

func (s *Store) provider() (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectSQLite3, s.w, fsys, goose.WithDisableGlobalRegistry(true),
		goose.WithLocker(&migrationLock{path: s.path + migrationLockSuffix}))
}

// migrationLockSuffix names the lock file of a database's migrations, next
// to it.
const migrationLockSuffix = "-migrations.lock"

// migrationLock keeps processes opening one database from migrating it at
// once. goose has no lock for SQLite, and a process acting on the list of
// migrations it read before another applied them would apply one again,
// undoing those after it. The lock is an exclusive transaction on an
// SQLite file of its own, next to the database (the writer connection
// cannot hold it: goose's migrations need it): the operating system drops
// it with a process that dies.
type migrationLock struct {
	path string
	db   *sql.DB
	conn *sql.Conn
}

// migrationWait is how long a process waits for another's migrations.
const migrationWait = 10 * time.Minute

func (l *migrationLock) Lock(ctx context.Context, _ *sql.DB) error {
	db, err := sql.Open("sqlite", l.path+"?_pragma="+url.QueryEscape(fmt.Sprintf("busy_timeout(%d)", migrationWait.Milliseconds())))
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, "BEGIN EXCLUSIVE")
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		db.Close()
		return fmt.Errorf("migration lock %s: %w", l.path, err)
	}
	l.db, l.conn = db, conn
	return nil
}

func (l *migrationLock) Unlock(ctx context.Context, _ *sql.DB) error {
	if l.conn == nil {
		return nil
	}
	_, err := l.conn.ExecContext(ctx, "ROLLBACK")
	err = errors.Join(err, l.conn.Close(), l.db.Close())
	l.db, l.conn = nil, nil
	return err
}

// LatestSchema returns the schema version Migrate brings a database to.
func (s *Store) LatestSchema() int64 {
	fsys, _ := fs.Sub(migrations, "migrations") // a valid path
	return migrate.Latest(fsys)
}

// Warnings says what of the database's settings runproof would suffer
// from: nothing, since it sets them itself.
func (s *Store) Warnings(context.Context) ([]string, error) { return nil, nil }

// DamagedTriggers returns the triggers the migrations create that the
// database no longer has as they create them: dropped, or created again
// otherwise, behind runproof's back.
func (s *Store) DamagedTriggers(ctx context.Context) ([]migrate.Trigger, error) {
	have, err := s.triggers(ctx)
	if err != nil {
		return nil, err
	}
	fsys, _ := fs.Sub(migrations, "migrations") // a valid path
	return migrate.Damaged(migrate.ReadGuards(fsys).Triggers, have, func(t migrate.Trigger, def string) bool {
		return migrate.Normalize(def) == migrate.Normalize(t.Statement)
	}), nil
}

// triggers returns the database's triggers, named "table.trigger", with
// the statement that creates each as SQLite keeps it.
func (s *Store) triggers(ctx context.Context) (map[string]string, error) {
	type trigger struct{ name, sql string }
	found, err := collect(ctx, s.db, func(row scanner) (t trigger, err error) { return t, row.Scan(&t.name, &t.sql) },
		`SELECT tbl_name || '.' || name, sql FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: triggers: %w", err)
	}
	have := make(map[string]string, len(found))
	for _, t := range found {
		have[t.name] = t.sql
	}
	return have, nil
}

// Migrate applies the embedded migrations not yet applied, each in its own
// transaction, holding the migration lock: a process opening the database
// meanwhile waits for it.
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	tables, err := collect(ctx, s.db, scanString, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if err := migrate.Up(ctx, p, tables); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.Optimize(ctx)
}

// Optimize has SQLite gather the statistics its query planner lacks
// (PRAGMA optimize, on the tables that need it, with a bounded sample).
// Without them it guesses that a tenant holds a few rows and may walk all
// of them through an index chosen for the sort rather than the filter.
// Migrate runs it; a long-running server should every few minutes (it does
// nothing to a table whose size has not changed much).
func (s *Store) Optimize(ctx context.Context) error {
	conn, err := s.writer(ctx, ordinary, "sqlite: optimize")
	if err != nil {
		return err
	}
	defer conn.Close()
	// Some thousand rows of each index are enough for the planner, and
	// keep a large table's analysis short: the writer waits for it.
	for _, q := range []string{"PRAGMA analysis_limit=1000", "PRAGMA optimize=0x10002"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqlite: optimize: %w", err)
		}
	}
	return nil
}

// SchemaVersion returns the version of the last applied migration (0 when
// none is).
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var versioned bool // asked first: goose would make its table to answer
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?`, migrate.VersionTable).Scan(&versioned); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	} else if !versioned {
		return 0, nil
	}
	p, err := s.provider()
	if err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return v, nil
}

// ExecRaw runs SQL as given, for tests and maintenance only: it bypasses
// every rule the Store methods keep (though not the database's triggers).
func (s *Store) ExecRaw(ctx context.Context, query string) error {
	w, err := s.writer(ctx, ordinary, "exec")
	if err != nil {
		return err
	}
	defer w.Close()
	_, err = w.ExecContext(ctx, query)
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	// The readers answer at once; the writer may be busy with a long write.
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return errors.Join(s.db.Close(), s.w.Close()) }

// isUnique reports whether err is a broken UNIQUE or PRIMARY KEY constraint.
func isUnique(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// Unusable says why the database file cannot be used when err is SQLite
// refusing it for a cause its user can remove, "" otherwise.
func Unusable(err error) string {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return ""
	}
	if e.Code() == sqlite3.SQLITE_IOERR_SHMSIZE { // the WAL's shared memory could not grow
		return "the disk that holds it is full: free some space"
	}
	switch e.Code() & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_BUSY:
		return "another process (a serve, or a command still running) has held its write lock for longer than " + busyTimeout.String() +
			": retry when it is done"
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
		return "it, or the directory that holds it, cannot be written by this user: check their owner and permissions"
	case sqlite3.SQLITE_NOTADB:
		return "it is not an SQLite database: give --data a directory of runproof's, or an empty one"
	case sqlite3.SQLITE_CORRUPT:
		return "the database file is damaged: restore it from a backup"
	case sqlite3.SQLITE_FULL:
		return "the disk that holds it is full: free some space"
	}
	return ""
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// isForeignKey reports whether err is a broken FOREIGN KEY constraint.
func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// querier is a database or a transaction.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, db querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	return collectUntil(ctx, db, scan, nil, query, args...)
}

// collectUntil is collect, but stops after the row that full, when not
// nil, says fills the list: the rows after it are not read.
func collectUntil[T any](ctx context.Context, db querier, scan func(scanner) (T, error), full func(T) bool, query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if full != nil && full(v) {
			break
		}
	}
	return out, rows.Err()
}

// filter builds a WHERE clause from the filters that are set.
type filter struct {
	conds string
	args  []any
}

func (f *filter) add(cond string, args ...any) {
	if f.conds != "" {
		f.conds += " AND "
	}
	f.conds += cond
	f.args = append(f.args, args...)
}

// timeRange adds the half-open range [from, to) on col when set.
func (f *filter) timeRange(col string, from, to time.Time) {
	if !from.IsZero() {
		f.add(col+" >= ?", timeText(from))
	}
	if !to.IsZero() {
		f.add(col+" < ?", timeText(to))
	}
}

// page renders LIMIT and OFFSET; a zero limit means no limit.
func page(limit, offset int) string {
	if limit <= 0 && offset <= 0 {
		return ""
	}
	if limit <= 0 {
		limit = -1 // SQLite's "no limit", needed before OFFSET
	}
	return fmt.Sprintf(" LIMIT %d OFFSET %d", limit, max(offset, 0))
}

// timeText is how a time is stored: runproof.FormatTime, whose fixed width
// makes text order time order.
func timeText(t time.Time) string { return runproof.FormatTime(t) }

// nullTimeText stores a nil time as NULL.
func nullTimeText(t *time.Time) any {
	if t == nil {
		return nil
	}
	return timeText(*t)
}

// timeCol scans a stored time.
type timeCol struct{ p *time.Time }

func (c timeCol) Scan(v any) error {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("time column holds %T", v)
	}
	t, err := time.Parse(runproof.TimeFormat, s)
	if err != nil {
		return err
	}
	*c.p = runproof.Timestamp(t)
	return nil
}

// nullTimeCol scans a stored time that may be NULL.
type nullTimeCol struct{ p **time.Time }

func (c nullTimeCol) Scan(v any) error {
	if v == nil {
		*c.p = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(v); err != nil {
		return err
	}
	*c.p = &t
	return nil
}

// jsonList stores a list as a JSON array, or NULL when it is empty, so that
// an empty list always reads back as nil.
func jsonList[T any](v []T) (any, error) {
	if len(v) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// jsonCol scans a JSON column into p; NULL leaves p as it is.
type jsonCol struct{ p any }

func (c jsonCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return json.Unmarshal([]byte(v), c.p)
	case []byte:
		return json.Unmarshal(v, c.p)
	}
	return fmt.Errorf("JSON column holds %T", v)
}
