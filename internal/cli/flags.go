package cli

import (
	"flag"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// DatabaseURLEnv names the variable that --database defaults to.
const DatabaseURLEnv = "RUNPROOF_DATABASE_URL"

// SigningKeyEnv names the variable that --signing-key defaults to.
const SigningKeyEnv = "RUNPROOF_SIGNING_KEY_FILE"

// defaultData is the data directory when --data is not given.
const defaultData = "./runproof-data"

const commonHelp = `  --data DIR            data directory: the SQLite file DIR/runproof.db and the
                        export artifacts in DIR/artifacts (default ./runproof-data)
  --database URL        postgres://… to use PostgreSQL instead of SQLite (default $` + DatabaseURLEnv + `;
                        a password is better there, or in PGPASSWORD or
                        ~/.pgpass: a command line is seen by every user in ps)
  --signing-key FILE    Ed25519 private key (PKCS#8 PEM) that signs ZIP bundles
                        and ledger checkpoints (default $` + SigningKeyEnv + `
                        when not empty, else the newest key of
                        DIR/signing-keys, made there on first use; an empty
                        --signing-key is refused: leave the flag out)
  --log-format FORMAT   text or json (default text)
  --log-level LEVEL     debug, info, warn or error (default info)

  Commands refuse a data directory that cannot be the one meant: export and
  ledger verify one without a database; export, ledger verify and serve one
  without keys while the database holds a ledger (its keys are elsewhere);
  serve one whose keys did not sign the ledger's latest checkpoint.
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
	if c.engine() != enginePostgres {
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
		return enginePostgres
	}
	if c.database == "" {
		return engineSQLite
	}
	return ""
}

// The engines engine() names.
const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

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

// where names the database the flags select, for messages: its URL
// without a password, or the SQLite file.
func (c *common) where() string {
	if c.engine() != enginePostgres {
		return c.sqlitePath()
	}
	if u, _, ok := withoutPassword(c.database); ok {
		return u
	}
	return "the PostgreSQL database of --database" // not a URL
}

// sqlitePath is the SQLite database file of the data directory.
func (c *common) sqlitePath() string { return filepath.Join(c.data, "runproof.db") }

// databaseEnv is the line that sets $RUNPROOF_DATABASE_URL, which the
// commands suggested with flags use, to the --database given, when it is
// not set to it already; its password is left out ("" with SQLite).
func (c *common) databaseEnv() string {
	if c.engine() != enginePostgres || os.Getenv(DatabaseURLEnv) == c.database {
		return ""
	}
	u, had, ok := withoutPassword(c.database)
	if !ok {
		return ""
	}
	note := ""
	if had {
		note = "   # the password left out: add it"
	}
	return "  export " + DatabaseURLEnv + "='" + u + "'" + note + "\n"
}

// withoutPassword is a database URL with any password left out, that of
// the user and that of the client's TLS key (had says whether it held
// one); ok is false when it is not a URL.
func withoutPassword(raw string) (u string, had, ok bool) {
	parsed, err := url.Parse(raw)
	if err != nil || parsed.Scheme == "" {
		return "", false, false
	}
	if _, has := parsed.User.Password(); has {
		parsed.User, had = url.User(parsed.User.Username()), true
	}
	q := parsed.Query()
	for _, secret := range []string{"password", "sslpassword"} {
		if q.Has(secret) {
			q.Del(secret)
			parsed.RawQuery, had = q.Encode(), true
		}
	}
	return parsed.String(), had, true
}

// flags repeats the flags that select the data and the signing key, for
// commands to suggest. The database is left to $RUNPROOF_DATABASE_URL,
// which databaseEnv sets: a password given in --database would be on a
// command line, which ps shows.
func (c *common) flags() string {
	var f string
	if c.data != defaultData {
		f += "--data " + shellWord(c.data) + " "
	}
	if c.signingKey != "" && c.signingKey != os.Getenv(SigningKeyEnv) {
		f += "--signing-key " + shellWord(c.signingKey) + " "
	}
	return f
}

// shellWord quotes s for a POSIX shell when it holds more than letters,
// digits and ./_-:@%+=,
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./_-:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
