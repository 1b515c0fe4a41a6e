package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/migrate"
	"github.com/runproof/runproof/internal/store/postgres"
	"github.com/runproof/runproof/internal/store/sqlite"
)

// DatabaseURLEnv names the variable that --database defaults to.
const DatabaseURLEnv = "RUNPROOF_DATABASE_URL"

// SigningKeyEnv names the variable that --signing-key defaults to.
const SigningKeyEnv = "RUNPROOF_SIGNING_KEY_FILE"

// defaultData is the data directory when --data is not given.
const defaultData = "./runproof-data"

const commonHelp = `  --data DIR            data directory: the SQLite file DIR/runproof.db and the
                        export artifacts in DIR/artifacts (default ./runproof-data)
  --database URL        postgres://… to use PostgreSQL instead of SQLite (default $` + DatabaseURLEnv + `)
  --signing-key FILE    Ed25519 private key (PKCS#8 PEM) that signs ZIP bundles
                        and ledger checkpoints (default $` + SigningKeyEnv + `
                        when not empty; without either, the newest key of
                        DIR/signing-keys, created on first use; export and
                        ledger verify refuse a DIR without database; they
                        and serve refuse one without keys while the
                        database holds a ledger, and serve a ledger whose
                        latest checkpoint a key it lacks signed;
                        --signing-key '' is refused: leave the flag out to
                        use those)
  --log-format FORMAT   text or json (default text)
  --log-level LEVEL     debug, info, warn or error (default info)
`

// common holds the flags every command takes.
type common struct {
	data       string
	database   string
	signingKey string
	logFormat  string
	logLevel   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", defaultData, "data directory")
	fs.StringVar(&c.database, "database", os.Getenv(DatabaseURLEnv), "PostgreSQL URL")
	fs.StringVar(&c.signingKey, "signing-key", os.Getenv(SigningKeyEnv), "signing key file")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
}

// check refuses flag values that cannot work, before anything is opened.
func (c *common) check() error {
	if c.database == "" && c.data == "" {
		return usagef("--data must name a directory (e.g. ./runproof-data)")
	}
	return nil
}

// flagGiven reports whether the command line set a flag, even to "".
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// checkDatabase refuses a --database that is not a postgres:// URL naming
// a database. It never echoes the URL, which may hold a password.
func (c *common) checkDatabase() error {
	if c.database == "" {
		return nil
	}
	if c.engine() != "postgres" {
		return usagef("--database (or %s) must be a postgres:// or postgresql:// URL; leave it out to use SQLite in --data", DatabaseURLEnv)
	}
	u, err := url.Parse(c.database)
	if err != nil { // its message holds the URL
		return usagef("--database (or %s) is not a valid URL: check the port, and percent-encode any #, /, ? or @ in the user name or password (# as %%23, / as %%2F, ? as %%3F, @ as %%40)", DatabaseURLEnv)
	}
	if strings.Trim(u.Path, "/") == "" && u.Query().Get("dbname") == "" && os.Getenv("PGDATABASE") == "" {
		return usagef("--database (or %s) must name a database, e.g. postgres://runproof@db.example/runproof", DatabaseURLEnv)
	}
	return nil
}

// engine names the database engine the flags select.
func (c *common) engine() string {
	if strings.HasPrefix(c.database, "postgres://") || strings.HasPrefix(c.database, "postgresql://") {
		return "postgres"
	}
	if c.database == "" {
		return "sqlite"
	}
	return ""
}

// logger builds the one logger of the process, writing to stderr.
func (c *common) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usagef("--log-level must be debug, info, warn or error, not %q", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		// Durations as "20s", as the text log writes them, not nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usagef("--log-format must be text or json, not %q", c.logFormat)
}

// database is a store of either engine, as the commands open it.
type database interface {
	runproof.Store
	Migrate(context.Context) error
	SchemaVersion(context.Context) (int64, error)
	LatestSchema() int64 // the version Migrate brings the schema to
	// MissingTriggers returns the triggers Migrate creates that the
	// database lacks (or has disabled).
	MissingTriggers(context.Context) ([]migrate.Trigger, error)
}

// missingTriggers says which of the triggers that guard runproof's records
// the database lacks, or "" when it lacks none.
func missingTriggers(ctx context.Context, store database) (string, error) {
	missing, err := store.MissingTriggers(ctx)
	if err != nil || len(missing) == 0 {
		return "", err
	}
	names := make([]string, len(missing))
	for i, t := range missing {
		names[i] = fmt.Sprintf("%s on %s (migration %s)", t.Name, t.Table, t.Migration)
	}
	are := "are"
	if len(missing) == 1 {
		are = "is"
	}
	return fmt.Sprintf("%d of the database's guard triggers %s gone or disabled: %s. The rows they guard can be changed "+
		"behind runproof's back: find out who removed them, and create them again as those migrations do",
		len(missing), are, strings.Join(names, ", ")), nil
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
	switch c.engine() {
	case "postgres":
		store, err = postgres.Open(ctx, c.database)
		if err != nil {
			return nil, fmt.Errorf("cannot open the PostgreSQL database of --database: %w", err)
		}
	default:
		// 0700: the database holds key hashes and every agent's content.
		if err := os.MkdirAll(c.data, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create the data directory (--data): %w", err)
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

// openRecorded opens the store of a command that works on what runproof
// has recorded (export, ledger verify, keys list and revoke). A data
// directory without a database is refused rather than made: it is most
// likely not the one --data was meant to name, and an empty database
// would answer "nothing there" or "no such incident".
func openRecorded(ctx context.Context, e *env) (database, error) {
	if e.engine() == "sqlite" {
		path := e.sqlitePath()
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no runproof database at %s: give --data the data directory runproof serve uses (or --database its PostgreSQL URL)", path)
		}
	}
	return openStore(ctx, e)
}

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
	if signing.HasKeys(dir) {
		return true, nil
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
		if why := sqlite.Unusable(err); why != "" && e.engine() == "sqlite" {
			return before, fmt.Errorf("cannot use %s: %s", e.sqlitePath(), why)
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
		return exporting{}, err
	}
	led, err := newLedger(store, keys)
	if err != nil {
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
	if err != nil {
		return nil, fmt.Errorf("--signing-key (or %s): %w", SigningKeyEnv, err)
	}
	keys, err := signing.OpenWith(dir, k)
	if err != nil {
		return nil, fmt.Errorf("cannot open the signing keys under --data: %w", err)
	}
	return keys, nil
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
		if fi, err := os.Stat(name); err == nil && fi.Mode().Perm()&0o077 != 0 && !strings.HasSuffix(name, ".pub.pem") {
			e.log.Warn("a private signing key may be read by others: chmod 600 it", slog.String("file", name),
				slog.String("mode", fmt.Sprintf("%#o", fi.Mode().Perm())))
		}
	}
}

// checkTenant refuses a missing or malformed --tenant as a usage error, with
// the rule the service applies to tenant ids.
func checkTenant(cmd, tenant string) error {
	if tenant == "" {
		return usagef("%s: --tenant is required (the tenant the records belong to)", cmd)
	}
	if !runproof.ValidTenantID(tenant) {
		return usagef("%s: --tenant %s", cmd, runproof.TenantIDRule)
	}
	return nil
}

// fieldMessage renders a validation error on one line as "field: message"
// for each field at fault, up to maxFieldMessages of them, then how many
// more there are.
func fieldMessage(err error) string {
	fields := runproof.ErrorFields(err)
	if len(fields) == 0 {
		return err.Error()
	}
	parts := make([]string, 0, min(len(fields), maxFieldMessages))
	for _, f := range fields[:min(len(fields), maxFieldMessages)] {
		parts = append(parts, f.Field+": "+f.Message)
	}
	msg := strings.Join(parts, "; ")
	if len(fields) > maxFieldMessages {
		msg += fmt.Sprintf(" (and %d more)", len(fields)-maxFieldMessages)
	}
	return msg
}

// maxFieldMessages is how many fields at fault a message names.
const maxFieldMessages = 5

// decodeMessage words an error of service.DecodeJSON, which speaks of an
// HTTP body, for the input at hand ("the line", "the file").
func decodeMessage(err error, what string) string {
	return strings.Replace(fieldMessage(err), "the body", what, 1)
}

// readInput reads the named file, or stdin for "-", whole, up to
// maxInputFile.
func readInput(ctx context.Context, name string, stdin io.Reader) ([]byte, error) {
	f, err := openInput(ctx, name, stdin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err == nil && len(b) > maxInputFile {
		err = fmt.Errorf("%s is over %d MiB: split it", inputName(name), maxInputFile>>20)
	}
	return b, err
}

// maxInputFile bounds the files read whole (policies).
const maxInputFile = 16 << 20

// openInput opens the named file, or stdin for "-". Reading stdin ends
// with ctx's error once ctx is done (Ctrl-C), even while it waits for
// input that may never come.
func openInput(ctx context.Context, name string, stdin io.Reader) (io.ReadCloser, error) {
	if name == "-" {
		pr, pw := io.Pipe()
		go func() { // left waiting on stdin when ctx ends first; the command is ending
			_, err := io.Copy(pw, stdin)
			pw.CloseWithError(err)
		}()
		context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
		return pr, nil
	}
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file", name)
	}
	return f, err
}

// inputName is how errors name an input file.
func inputName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// where names the database the flags select, for messages.
func (c *common) where() string {
	if c.engine() == "postgres" {
		return "the PostgreSQL database of --database"
	}
	return c.sqlitePath()
}

// sqlitePath is the SQLite database file of the data directory.
func (c *common) sqlitePath() string { return filepath.Join(c.data, "runproof.db") }

// databaseEnv is the line that sets $RUNPROOF_DATABASE_URL, which flags
// name, to the --database given, when it is not set to it already; its
// password is left out ("" with SQLite).
func (c *common) databaseEnv() string {
	if c.engine() != "postgres" || os.Getenv(DatabaseURLEnv) == c.database {
		return ""
	}
	u, err := url.Parse(c.database)
	if err != nil {
		return ""
	}
	note := ""
	if _, has := u.User.Password(); has {
		u.User, note = url.User(u.User.Username()), "   # the password left out: add it"
	}
	if q := u.Query(); q.Has("password") {
		q.Del("password")
		u.RawQuery, note = q.Encode(), "   # the password left out: add it"
	}
	return "  export " + DatabaseURLEnv + "='" + u.String() + "'" + note + "\n"
}

// flags repeats the flags that select the data, for commands to suggest.
func (c *common) flags() string {
	var f string
	if c.data != defaultData {
		f += "--data " + c.data + " "
	}
	if c.engine() == "postgres" {
		f += "--database \"$" + DatabaseURLEnv + "\" "
	}
	return f
}

// record stores the audit event of what a command did. The change it
// accounts for is made, so it is stored even after Ctrl-C, but within
// ten seconds: a database gone away does not hold the command.
func record(ctx context.Context, svc *service.Service, ev runproof.AuditEvent) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return svc.Record(ctx, ev)
}

// cliEvent is the audit event of something a command did for the tenant:
// runproof itself (actor system) from the command line.
func cliEvent(tenant, category, action, resource, decision, detail string) runproof.AuditEvent {
	return runproof.AuditEvent{TenantID: tenant, Actor: "system", ActorType: runproof.OriginSystem,
		Category: category, Action: action, Resource: resource, Decision: decision, SourceComponent: "cli", Detail: detail}
}
