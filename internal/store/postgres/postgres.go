package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a runproof.Store backed by a PostgreSQL connection pool.
type Store struct {
	pool *pgxpool.Pool
}

var _ runproof.Store = (*Store)(nil)

// DefaultConnectTimeout bounds each connection attempt when the URL does
// not (connect_timeout): a server that accepts and never answers is an
// error, not a hang.
const DefaultConnectTimeout = 10 * time.Second

// Open connects to the database at url (a postgres:// URL or a key=value
// string). Parameters pgx does not know, such as search_path, are sent to
// the server as session settings. Call Migrate before use.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if !strings.Contains(url, "connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") == "" {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		var e *pgconn.PgError
		if errors.As(err, &e) && e.Code == "3D000" { // invalid_catalog_name
			return nil, fmt.Errorf("postgres: %w: create it (createdb -O ROLE %s), or name another in the URL", err, cfg.ConnConfig.Database)
		}
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// provider returns a goose provider over the pool. Migrations of one schema
// take an advisory lock named after the schema, so that servers starting
// together migrate one at a time and separate schemas never wait for each
// other.
func (s *Store) provider(ctx context.Context) (*goose.Provider, func() error, error) {
	var current *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&current); err != nil {
		return nil, nil, fmt.Errorf("current schema: %w", err)
	}
	if current == nil {
		var path string
		_ = s.pool.QueryRow(ctx, `SHOW search_path`).Scan(&path)
		return nil, nil, fmt.Errorf("no schema of the search_path (%s) exists: create it (CREATE SCHEMA …, owned by runproof's role) or name an existing one in the --database URL's search_path", path)
	}
	schema := *current
	h := fnv.New64a()
	h.Write([]byte("runproof migrations " + schema))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64())), lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, nil, err
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, nil, err
	}
	db := stdlib.OpenDBFromPool(s.pool) // closing it leaves the pool open
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return p, db.Close, nil
}

// LatestSchema returns the schema version Migrate brings a database to.
func (s *Store) LatestSchema() int64 {
	fsys, _ := fs.Sub(migrations, "migrations") // a valid path
	return migrate.Latest(fsys)
}

// Warnings says what of the server's settings runproof would suffer
// from: autovacuum off (or the statistics it needs), which every append
// and sealed audit event counts on to clear the rows they leave behind.
func (s *Store) Warnings(ctx context.Context) ([]string, error) {
	var on bool
	err := s.pool.QueryRow(ctx, `SELECT current_setting('autovacuum')::bool AND current_setting('track_counts')::bool`).Scan(&on)
	if err != nil {
		return nil, fmt.Errorf("postgres: settings: %w", err)
	}
	if !on {
		return []string{"autovacuum is off (or track_counts, which it needs): appends will slow down several times " +
			"within minutes under load; turn it on in postgresql.conf"}, nil
	}
	return nil, nil
}

// DamagedTriggers returns the triggers the migrations create that the
// schema no longer has as they create them: dropped, disabled, created
// again on other events or columns, at another time, with a condition
// where there was none (or none where there was one: a condition itself
// is not compared), executing another function or with arguments, or
// executing a function whose body was replaced, behind runproof's back.
func (s *Store) DamagedTriggers(ctx context.Context) ([]migrate.Trigger, error) {
	have, err := s.triggers(ctx)
	if err != nil {
		return nil, err
	}
	fsys, _ := fs.Sub(migrations, "migrations") // a valid path
	guards := migrate.ReadGuards(fsys)
	return migrate.Damaged(guards.Triggers, have, func(t migrate.Trigger, got triggerDef) bool {
		want, ok := parseTrigger(t.Statement)
		body, known := guards.Functions[want.function]
		want.body = got.body
		return ok && known && got == want && migrate.Normalize(got.body) == migrate.Normalize(body)
	}), nil
}

// A triggerDef is what a trigger does, as pg_trigger says it.
type triggerDef struct {
	tgtype   int16  // when it fires, on which events, for each row or statement
	columns  bool   // only on changes of some columns
	when     bool   // only under a condition
	function string // the function it executes
	args     int16  // with how many arguments
	body     string // the function's body
}

// triggers returns the schema's triggers that fire in a session of
// runproof's (enabled, not for replicas only), named "table.trigger".
func (s *Store) triggers(ctx context.Context) (map[string]triggerDef, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname || '.' || t.tgname, t.tgtype, cardinality(t.tgattr::int2[]) > 0,
		t.tgqual IS NOT NULL, p.proname, t.tgnargs, p.prosrc
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
		WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'A')
		AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())`)
	if err != nil {
		return nil, fmt.Errorf("postgres: triggers: %w", err)
	}
	have := map[string]triggerDef{}
	var name string
	var d triggerDef
	_, err = pgx.ForEachRow(rows, []any{&name, &d.tgtype, &d.columns, &d.when, &d.function, &d.args, &d.body}, func() error {
		have[name] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: triggers: %w", err)
	}
	return have, nil
}

// The bits of pg_trigger.tgtype.
const (
	triggerRow      = 1 << 0
	triggerBefore   = 1 << 1
	triggerInsert   = 1 << 2
	triggerDelete   = 1 << 3
	triggerUpdate   = 1 << 4
	triggerTruncate = 1 << 5
	triggerInstead  = 1 << 6
)

var createTrigger = regexp.MustCompile(`(?is)^CREATE\s+TRIGGER\s+\w+\s+(BEFORE|AFTER|INSTEAD\s+OF)\s+(.+?)\s+ON\s+\w+` +
	`(?:\s+FOR\s+(?:EACH\s+)?(ROW|STATEMENT))?(\s+WHEN\s*\(.*\))?\s+EXECUTE\s+(?:FUNCTION|PROCEDURE)\s+(\w+)\s*\(\s*\)\s*;?$`)

var orEvents = regexp.MustCompile(`(?i)\s+OR\s+`)

// parseTrigger reads what a migration's CREATE TRIGGER statement makes
// (all but the function's body); false when it is not of the forms
// runproof's migrations write.
func parseTrigger(stmt string) (triggerDef, bool) {
	m := createTrigger.FindStringSubmatch(migrate.Normalize(migrate.WithoutComments(stmt)))
	if m == nil {
		return triggerDef{}, false
	}
	d := triggerDef{function: m[5], when: m[4] != ""}
	switch strings.ToUpper(m[1]) {
	case "BEFORE":
		d.tgtype |= triggerBefore
	case "AFTER":
	default:
		d.tgtype |= triggerInstead
	}
	if strings.EqualFold(m[3], "ROW") {
		d.tgtype |= triggerRow
	}
	for _, event := range orEvents.Split(m[2], -1) {
		switch f := strings.Fields(strings.ToUpper(event)); {
		case len(f) == 1 && f[0] == "INSERT":
			d.tgtype |= triggerInsert
		case len(f) == 1 && f[0] == "DELETE":
			d.tgtype |= triggerDelete
		case len(f) == 1 && f[0] == "TRUNCATE":
			d.tgtype |= triggerTruncate
		case f[0] == "UPDATE":
			d.tgtype |= triggerUpdate
			d.columns = d.columns || len(f) > 1 // UPDATE OF a, b
		default:
			return triggerDef{}, false
		}
	}
	return d, true
}

// Migrate applies the embedded migrations not yet applied, each in its own
// transaction, to the first schema of the search path.
func (s *Store) Migrate(ctx context.Context) error {
	p, done, err := s.provider(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer done()
	// The schema's tables, but an extension's (PostGIS's, say).
	tables, err := collect(ctx, s.pool, scanString, `SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) AND c.relkind IN ('r', 'p')
		AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if err := migrate.Up(ctx, p, tables); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// SchemaVersion returns the version of the last applied migration (0 when
// none is).
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var versioned bool // asked first: goose would make its table to answer
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass(quote_ident(current_schema()) || '.`+migrate.VersionTable+`') IS NOT NULL`).Scan(&versioned); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	} else if !versioned {
		return 0, nil
	}
	p, done, err := s.provider(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	defer done()
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// ExecRaw runs SQL as given, for tests and maintenance only: it bypasses
// every rule the Store methods keep (though not the database's triggers).
func (s *Store) ExecRaw(ctx context.Context, query string) error {
	_, err := s.pool.Exec(ctx, query)
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// isUnique reports whether err is a broken UNIQUE or PRIMARY KEY constraint.
func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

// querier is the pool or a transaction.
type querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, db querier, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, query, args...)
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
	}
	return out, rows.Err()
}

// filter builds a WHERE clause from the filters that are set. Conditions are
// written with ? and numbered here.
type filter struct {
	conds string
	args  []any
}

func (f *filter) add(cond string, args ...any) {
	for _, a := range args {
		f.args = append(f.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(f.args)), 1)
	}
	if f.conds != "" {
		f.conds += " AND "
	}
	f.conds += cond
}

// timeRange adds the half-open range [from, to) on col when set.
func (f *filter) timeRange(col string, from, to time.Time) {
	if !from.IsZero() {
		f.add(col+" >= ?", runproof.Timestamp(from))
	}
	if !to.IsZero() {
		f.add(col+" < ?", runproof.Timestamp(to))
	}
}

// page renders LIMIT and OFFSET; a zero limit means no limit.
func page(limit, offset int) string {
	var s string
	if limit > 0 {
		s += fmt.Sprintf(" LIMIT %d", limit)
	}
	if offset > 0 {
		s += fmt.Sprintf(" OFFSET %d", offset)
	}
	return s
}

// utc gives a time read back the one form runproof keeps: pgx returns
// timestamptz in the local zone.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := runproof.Timestamp(*t)
	return &u
}

// nullTime writes a nil time as NULL.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return runproof.Timestamp(*t)
}

// jsonList stores a list as a JSON array, or NULL when it is empty, so that
// an empty list always reads back as nil.
func jsonList[T any](v []T) (*string, error) {
	if len(v) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

// unmarshalNull decodes a JSON column into p; NULL leaves p as it is.
func unmarshalNull(s *string, p any) error {
	if s == nil {
		return nil
	}
	return json.Unmarshal([]byte(*s), p)
}
