package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/sqlite"
)

// TestDatabaseEnv: the commands demo prints name $RUNPROOF_DATABASE_URL;
// a --database given otherwise is set in it first, without its password.
func TestDatabaseEnv(t *testing.T) {
	t.Setenv(DatabaseURLEnv, "")
	for db, want := range map[string]string{
		"": "",
		"postgres://u:secret@db:5432/x?sslmode=disable":     "  export " + DatabaseURLEnv + "='postgres://u@db:5432/x?sslmode=disable'   # the password left out: add it\n",
		"postgres://u@db/x":                                 "  export " + DatabaseURLEnv + "='postgres://u@db/x'\n",
		"postgres://u@db/x?password=secret&sslmode=disable": "  export " + DatabaseURLEnv + "='postgres://u@db/x?sslmode=disable'   # the password left out: add it\n",
	} {
		c := common{data: defaultData, database: db}
		if got := c.databaseEnv(); got != want {
			t.Errorf("--database %q: %q, want %q", db, got, want)
		}
	}
	// Messages name the database without its password.
	for db, want := range map[string]string{
		"postgres://u:secret@db:5432/x?sslmode=disable":            "postgres://u@db:5432/x?sslmode=disable",
		"postgres://u@db/x?password=secret":                        "postgres://u@db/x",
		"postgres://u@db/x?sslpassword=secret&sslmode=verify-full": "postgres://u@db/x?sslmode=verify-full",
	} {
		if got := (&common{database: db}).where(); got != want {
			t.Errorf("--database %q named %q, want %q", db, got, want)
		}
	}
	t.Setenv(DatabaseURLEnv, "postgres://u@db/x")
	if got := (&common{database: "postgres://u@db/x"}).databaseEnv(); got != "" {
		t.Errorf("the variable holds the URL already: %q", got)
	}
}

// TestFlagWords: an export's fields are named by their flags, and only
// fields: "formatting" in a message stays a word.
func TestFlagWords(t *testing.T) {
	for msg, want := range map[string]string{
		"format: is required":                          "--format: is required",
		"run_id: give run_id or incident_id, not both": "--run: give --run or --incident, not both",
		"prepared_by: must not hold control characters or bidirectional formatting characters; format: is required": "--prepared-by: must not hold control characters or bidirectional formatting characters; --format: is required",
		"period_end: must be after period_start; classification: too long":                                          "--period-end: must be after --period-start; --classification: too long",
		"the export format zip needs a key":                                                                         "the export format zip needs a key",
	} {
		if got := flagWords(msg); got != want {
			t.Errorf("flagWords(%q) = %q, want %q", msg, got, want)
		}
	}
}

// hungCloser is a database that never finishes closing.
type hungCloser struct{ release chan struct{} }

func (h hungCloser) Close() error { <-h.release; return nil }

// TestCloseStoreIsBounded: serve does not wait on a database that hangs
// as it closes (PostgreSQL's pool waits on its connections): the stop
// keeps within its budget.
func TestCloseStoreIsBounded(t *testing.T) {
	var log bytes.Buffer
	h := hungCloser{release: make(chan struct{})}
	defer close(h.release)
	start := time.Now()
	closeStore(&env{log: slog.New(slog.NewTextHandler(&log, nil))}, h)
	if took := time.Since(start); took > closeWait+10*time.Second {
		t.Errorf("closing a hung database took %s, want at most about %s", took, closeWait)
	}
	if !strings.Contains(log.String(), "did not close in time") {
		t.Errorf("logged %q", log.String())
	}
}

// TestJSONLogDurations: the JSON log writes durations as the text log
// does ("20s"), not as nanoseconds.
func TestJSONLogDurations(t *testing.T) {
	var out bytes.Buffer
	log, err := (&common{logLevel: "info", logFormat: "json"}).logger(&out)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("shutting down", slog.Duration("grace", 20*time.Second))
	if !strings.Contains(out.String(), `"grace":"20s"`) {
		t.Errorf("logged %s", out.String())
	}
}

// TestWarnOpenKeys: a private key file others may read is warned of; one
// of mode 0600, and a public key (by its name or its content), are not.
func TestWarnOpenKeys(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"open.pem": 0o644, "closed.pem": 0o600, "k.pub.pem": 0o644, "given.pem": 0o640, "public.pem": 0o644} {
		content := "-----BEGIN PRIVATE KEY-----\n"
		if name == "public.pem" {
			content = "-----BEGIN PUBLIC KEY-----\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	e := &env{common: common{signingKey: filepath.Join(dir, "given.pem")}, log: slog.New(slog.NewTextHandler(&out, nil))}
	warnOpenKeys(e, dir)
	for _, want := range []string{"open.pem mode=0644", "given.pem mode=0640"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no warning of %s: %q", want, out.String())
		}
	}
	if strings.Contains(out.String(), "closed.pem") || strings.Contains(out.String(), "k.pub.pem") || strings.Contains(out.String(), "public.pem") ||
		strings.Count(out.String(), "\n") != 2 {
		t.Errorf("warned of more: %q", out.String())
	}
}

// TestWarnOpenDatabase: a SQLite database others may read is warned of,
// once a file; one of mode 0600 is not.
func TestWarnOpenDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runproof.db")
	for name, mode := range map[string]os.FileMode{path: 0o644, path + "-wal": 0o600} {
		if err := os.WriteFile(name, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(name, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	warnOpenDatabase(&env{log: slog.New(slog.NewTextHandler(&out, nil))}, path)
	if !strings.Contains(out.String(), "runproof.db mode=0644") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("logged %q, want one warning, of runproof.db", out.String())
	}
}

// TestWarnOpenDataDir: a data directory others may write to is warned
// of; one of mode 0755 is not.
func TestWarnOpenDataDir(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "signing-keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{dir: 0o755, keys: 0o777} {
		if err := os.Chmod(name, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	warnOpenDataDir(&env{log: slog.New(slog.NewTextHandler(&out, nil))}, dir)
	if !strings.Contains(out.String(), "signing-keys mode=0777") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("logged %q, want one warning, of signing-keys", out.String())
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{"runproof-data": "runproof-data", "/tmp/a b": "'/tmp/a b'", "it's": `'it'\''s'`, "": "''", "$HOME": "'$HOME'"} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestExportFlagsCoverInput: every field of an export request can be set
// from `runproof export`, by a flag that exists, so that a field added to
// the request is not left out of the command unnoticed.
func TestExportFlagsCoverInput(t *testing.T) {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	exportCommand().setup(fs)
	// Fields set otherwise than by a flag of their own.
	otherwise := map[string]string{
		"scope":             "--incident or --run",
		"include_raw_steps": "--no-steps",
		"include_content":   "--include-content",
		"correlation_id":    "", // a command is not part of a traced call
	}
	for f := range reflect.TypeFor[export.Input]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		flags, ok := exportFlags[name]
		if !ok {
			flags, ok = otherwise[name]
		}
		if !ok {
			t.Errorf("field %s of an export request has no flag in exportFlags", name)
		}
		for _, fl := range strings.Fields(flags) {
			if strings.HasPrefix(fl, "--") && fs.Lookup(strings.TrimPrefix(fl, "--")) == nil {
				t.Errorf("field %s: export has no flag %s", name, fl)
			}
		}
	}
}

// TestWriteOutModes: a new file is 0644 less the umask, so a user's umask
// 077 keeps an export private; a file replaced keeps its mode exactly,
// group-writable under umask 022 too.
func TestWriteOutModes(t *testing.T) {
	dir := t.TempDir()
	mode := func(name string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	fresh := filepath.Join(dir, "new.json")
	if err := writeOut(fresh, strings.NewReader("{}"), 0o644); err != nil || mode(fresh) != 0o600 {
		t.Errorf("new file under umask 077: %v, %v; want 0600", mode(fresh), err)
	}
	syscall.Umask(0o022)
	shared := filepath.Join(dir, "shared.json")
	if err := os.WriteFile(shared, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o664); err != nil {
		t.Fatal(err)
	}
	if err := writeOut(shared, strings.NewReader("{}"), 0o644); err != nil || mode(shared) != 0o664 {
		t.Errorf("file of mode 0664 replaced under umask 022: %v, %v; want 0664 kept", mode(shared), err)
	}
	// An export holding content is its owner's alone.
	private := filepath.Join(dir, "content.json")
	if err := writeOut(private, strings.NewReader("{}"), outMode(export.Input{IncludeContent: true})); err != nil || mode(private) != 0o600 {
		t.Errorf("new file of an export with content under umask 022: %v, %v; want 0600", mode(private), err)
	}
	if err := writeOut(shared, strings.NewReader("{}"), outMode(export.Input{IncludeContent: true})); err != nil || mode(shared) != 0o600 {
		t.Errorf("file of mode 0664 replaced by an export with content: %v, %v; want 0600", mode(shared), err)
	}
}

// TestYAMLToJSON: a policy file's YAML is read as the JSON it stands for,
// numbers as written; what YAML would read otherwise than it looks, or
// what JSON cannot say, is refused with its line.
func TestYAMLToJSON(t *testing.T) {
	for in, want := range map[string]string{
		"threshold: 10":         `{"threshold":10}`,
		"threshold: 2.50":       `{"threshold":2.50}`,
		"threshold: 1e3":        `{"threshold":1e3}`,
		"threshold: +5":         `{"threshold":5}`,
		"threshold: .5":         `{"threshold":0.5}`,
		"threshold: -.5":        `{"threshold":-0.5}`,
		"threshold: 5.":         `{"threshold":5.0}`,
		"threshold: '010'":      `{"threshold":"010"}`,
		"name: on":              `{"name":"on"}`,
		"name: 12:30":           `{"name":"12:30"}`,
		"name: 2026-01-01":      `{"name":"2026-01-01"}`,
		"name: ~":               `{"name":null}`,
		"name: True":            `{"name":true}`,
		"a: &x [1]\nb: *x":      `{"a":[1],"b":[1]}`,
		"---\n- name: a\n---\n": `[{"name":"a"}]`,
		"# nothing":             `null`,
	} {
		got, err := yamlToJSON([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("%q: %s, %v; want %s", in, got, err, want)
		}
	}
	bomb := "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
	for i := 'b'; i <= 'h'; i++ {
		bomb += fmt.Sprintf("%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	for in, want := range map[string]string{
		"threshold: 010":             "line 1: 010 is not a plain number",
		"threshold: 0x10":            "line 1: 0x10 is not a plain number",
		"threshold: 0o10":            "line 1: 0o10 is not a plain number",
		"threshold: 1_000":           "line 1: 1_000 is not a plain number",
		"threshold: .inf":            "line 1: .inf is not a plain number",
		"\nthreshold: .NaN":          "line 2: .NaN is not a plain number",
		"a: 1\nb: 2\na: 3":           "line 3: a is given twice in one policy (first at line 1)",
		"a: &x {b: 1}\nc:\n  <<: *x": "line 3: YAML merge keys (<<) are not taken here",
		"a: !custom 1":               "line 1: the YAML tag !custom is not taken here",
		"a: !!binary aGk=":           "line 1: the YAML tag !!binary is not taken here",
		"a: !!int 5":                 "line 1: the YAML tag !!int is not taken here",
		"a: !!str 5":                 "line 1: the YAML tag !!str is not taken here",
		"- !!map {a: 1}":             "line 1: the YAML tag !!map is not taken here",
		"? [a]\n: 1":                 "line 1: a key must be a plain word",
		"a: [":                       "not valid YAML",
		"a: 1\n---\nb: 2":            "holds more than one YAML document (the --- at line 2 begins a second)",
		bomb:                         "once its aliases (*name) are expanded",
	} {
		if got, err := yamlToJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %s, %v; want an error with %q", in, got, err, want)
		}
	}
}

// TestLedgerVerifyInterrupted: a check cut short (Ctrl-C) has no outcome:
// it says so and records nothing; a check done before it is recorded; and
// no tenant's check begins after it.
func TestLedgerVerifyInterrupted(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Tenants a and b have audit events waiting for their ledgers: both are
	// checked.
	for _, tenant := range []string{"a", "b"} {
		if err := store.AppendAuditEvents(context.Background(), cliEvent(tenant, runproof.AuditIdentity, "keys.create", "key/k", runproof.DecisionAllow, "")); err != nil {
			t.Fatal(err)
		}
	}
	checks := func(tenant string) int {
		t.Helper()
		evs, err := store.ListAuditEvents(context.Background(), runproof.ListAuditParams{TenantID: tenant, Category: runproof.AuditIntegrity, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}

	// Ctrl-C as a's check is recorded: b's is not begun.
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	e := &env{log: slog.New(slog.DiscardHandler), stdout: &out}
	err = verifyLedgersOf(ctx, e, cancelOnRecord{store, cancel}, "", nil, nil, false)
	if err == nil || err.Error() != `ledger verify: interrupted before checking tenant "b"` ||
		!strings.HasPrefix(out.String(), "a: ok") || strings.Contains(out.String(), "b:") || checks("a") != 1 || checks("b") != 0 {
		t.Errorf("interrupted after a's check: %v, %q, %d and %d checks recorded", err, out.String(), checks("a"), checks("b"))
	}

	// Ctrl-C as b's check reads the ledger: nothing is recorded of it.
	out.Reset()
	ctx, cancel = context.WithCancel(context.Background())
	err = verifyLedgersOf(ctx, e, cancelOnRead{store, cancel}, "b", nil, nil, false)
	if err == nil || err.Error() != `ledger verify: interrupted while checking tenant "b"` ||
		out.String() != "b: interrupted before the check was done: nothing recorded\n" || checks("b") != 0 {
		t.Errorf("interrupted during b's check: %v, %q, %d checks recorded", err, out.String(), checks("b"))
	}
}

// cancelOnRead is a store that cancels a context as a ledger is first read
// from it: Ctrl-C during a check.
type cancelOnRead struct {
	*sqlite.Store
	cancel context.CancelFunc
}

func (c cancelOnRead) LedgerCheckpoint(ctx context.Context, tenantID string, size int64) (runproof.LedgerCheckpoint, error) {
	c.cancel()
	return c.Store.LedgerCheckpoint(ctx, tenantID, size)
}

// cancelOnRecord is a store that cancels a context once an audit event is
// appended to it: Ctrl-C as a check's outcome is recorded.
type cancelOnRecord struct {
	*sqlite.Store
	cancel context.CancelFunc
}

func (c cancelOnRecord) AppendAuditEvents(ctx context.Context, evs ...runproof.AuditEvent) error {
	defer c.cancel()
	return c.Store.AppendAuditEvents(ctx, evs...)
}

// TestStillRunning: long work logs that it goes on until stopped, and not
// after.
func TestStillRunning(t *testing.T) {
	out := &lockedBuffer{}
	e := &env{log: slog.New(slog.NewTextHandler(out, nil))}
	stop := stillRunning(e, "export still running", time.Millisecond)
	for !strings.Contains(out.String(), "export still running") {
		time.Sleep(time.Millisecond)
	}
	stop()
	logged := out.String()
	time.Sleep(20 * time.Millisecond)
	if out.String() != logged || !strings.Contains(logged, "elapsed=") {
		t.Errorf("%q, then %q", logged, out.String())
	}
}

// lockedBuffer is a buffer written and read from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// An expression written on several lines is listed on one.
func TestPolicyLimitOneLine(t *testing.T) {
	p := runproof.Policy{Type: runproof.PolicyExpression, Expression: "run.steps > 5 &&\n\trun.tokens > 1\n"}
	if got := policyLimit(p); got != "run.steps > 5 && run.tokens > 1" {
		t.Errorf("policyLimit = %q", got)
	}
}

// An interrupted migration says so, and what to do, not the driver's
// words for a cancelled query.
func TestMigrateInterrupted(t *testing.T) {
	e := &env{common: common{data: t.TempDir()}, log: slog.New(slog.DiscardHandler)}
	store, err := openDatabase(context.Background(), e.common)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := migrateStore(ctx, e, store); err == nil || !strings.Contains(err.Error(), "was interrupted") || !strings.Contains(err.Error(), "run the command again") {
		t.Errorf("a migration interrupted: %v", err)
	}
}

// A name holding a character that prints as nothing shows it as its code
// point in a table.
func TestCell(t *testing.T) {
	for in, want := range map[string]string{"tool:shell": "tool:shell", "tool:shell\u200b": "tool:shell<U+200B>", "sh\u00adell": "sh<U+00AD>ell", "é 日本": "é 日本"} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
	p := runproof.Policy{Type: runproof.PolicyStepTypeDenied, StepTypes: []string{"tool:shell\u200b", "exec"}}
	if got := policyLimit(p); got != "tool:shell<U+200B>,exec" {
		t.Errorf("policyLimit = %q", got)
	}
}
