package cli_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/runproof/runproof/internal/cli"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/sqlite"
)

// result is what one run of the command line left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process, with stdin as given.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	t.Setenv(cli.DatabaseURLEnv, "") // never pick up a real database
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// wantError checks a failure: the exit code and one line on stderr, starting
// with "runproof: " and containing want.
func wantError(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code = %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "runproof: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one line starting with \"runproof: \": %q", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr = %q, want it to contain %q", r.stderr, want)
	}
}

// openStore opens the SQLite store the CLI wrote in data, migrating it
// in case the command failed before it opened the store.
func openStore(t *testing.T, data string) runproof.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(data, "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// operator is the actor of what the commands do: the user who runs them.
func operator(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return "cli:" + u.Username
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKeysListAndRevoke(t *testing.T) {
	data := t.TempDir()
	secret := strings.TrimSpace(runCLI(t, "", "keys", "create", "--tenant", "acme", "--role", "agent", "--name", "bot", "--agent", "billing", "--data", data).stdout)
	runCLI(t, "", "keys", "create", "--tenant", "acme", "--role", "admin", "--data", data)
	store := openStore(t, data)
	svc := service.New(store, service.Options{})
	key, err := svc.Authenticate(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "", "keys", "list", "--tenant", "acme", "--data", data)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, key.ID+"  agent  billing  bot") || key.AgentID != "billing" {
		t.Fatalf("keys list: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "keys", "revoke", "--tenant", "acme", key.ID, "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "revoked key "+key.ID) {
		t.Fatalf("keys revoke: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := svc.Authenticate(context.Background(), secret); runproof.ErrorCode(err) != runproof.EUNAUTHORIZED ||
		!strings.Contains(err.Error(), "revoked") {
		t.Errorf("a revoked key authenticates: %v", err)
	}
	r = runCLI(t, "", "keys", "list", "--tenant", "acme", "--data", data)
	if line := regexp.MustCompile(key.ID + `.*`).FindString(r.stdout); line == "" || strings.HasSuffix(line, " -") {
		t.Errorf("keys list does not show the revocation: %q", line)
	}
	wantError(t, runCLI(t, "", "keys", "revoke", "--tenant", "acme", key.ID, "--data", data), 1, "revoked at")
	wantError(t, runCLI(t, "", "keys", "revoke", "--tenant", "globex", key.ID, "--data", data), 1, "has no API key")
	wantError(t, runCLI(t, "", "keys", "revoke", "--tenant", "acme", "--data", data), 2, "give the id")
	// A tenant without keys: a line saying so, no empty table.
	if r := runCLI(t, "", "keys", "list", "--tenant", "globex", "--data", data); r.code != 0 || r.stdout != "" ||
		!strings.Contains(r.stderr, "tenant globex has no API key") {
		t.Errorf("keys list of a tenant without keys: %d %q %q", r.code, r.stdout, r.stderr)
	}
	events, err := store.ListAuditEvents(context.Background(), runproof.ListAuditParams{TenantID: "acme", Category: runproof.AuditIdentity, Limit: 10})
	if err != nil || len(events) != 3 || events[0].Action != "keys.revoke" || events[0].Resource != "key/"+key.ID {
		t.Errorf("audit events: %+v, %v; want keys.revoke last", events, err)
	}

	// A leaked key known only by its secret: revoked by the secret, but
	// only in its own tenant.
	leaked := strings.TrimSpace(runCLI(t, "", "keys", "create", "--tenant", "acme", "--role", "viewer", "--data", data).stdout)
	wantError(t, runCLI(t, "", "keys", "revoke", "--tenant", "globex", leaked, "--data", data), 1, "has no API key with this secret")
	if r := runCLI(t, "", "keys", "revoke", "--tenant", "acme", leaked, "--data", data); r.code != 0 || !strings.Contains(r.stdout, "revoked key key_") {
		t.Fatalf("keys revoke by secret: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := svc.Authenticate(context.Background(), leaked); runproof.ErrorCode(err) != runproof.EUNAUTHORIZED {
		t.Errorf("a key revoked by its secret authenticates: %v", err)
	}
	wantError(t, runCLI(t, "", "keys", "revoke", "--tenant", "acme", service.KeyPrefix+"nosuchsecret", "--data", data), 1, "cannot revoke the key")

	// The secret on stdin, out of sight of ps.
	another := strings.TrimSpace(runCLI(t, "", "keys", "create", "--tenant", "acme", "--role", "viewer", "--data", data).stdout)
	if r := runCLI(t, another+"\n", "keys", "revoke", "--tenant", "acme", "-", "--data", data); r.code != 0 || !strings.Contains(r.stdout, "revoked key key_") {
		t.Fatalf("keys revoke of a secret on stdin: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := svc.Authenticate(context.Background(), another); runproof.ErrorCode(err) != runproof.EUNAUTHORIZED {
		t.Errorf("a key revoked by its secret on stdin authenticates: %v", err)
	}
	wantError(t, runCLI(t, "", "keys", "revoke", "--tenant", "acme", "-", "--data", data), 2, "stdin is empty")
}

func TestKeysCreate(t *testing.T) {
	data := t.TempDir()
	r := runCLI(t, "", "keys", "create", "--tenant", "acme", "--role", "agent", "--data", data)
	if r.code != 0 {
		t.Fatalf("exit code %d: %s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`^rp_[0-9a-f]{64}\n$`).MatchString(r.stdout) {
		t.Fatalf("stdout = %q, want the key alone on one line", r.stdout)
	}
	if !strings.Contains(r.stderr, "cannot be shown again") {
		t.Errorf("stderr = %q, want a note that the key cannot be shown again", r.stderr)
	}
	// Where the key is kept: a mistyped --data shows here, not as a key
	// the server refuses.
	if !strings.Contains(r.stderr, " in "+filepath.Join(data, "runproof.db")+": ") {
		t.Errorf("stderr = %q, want the database the key is in", r.stderr)
	}

	store := openStore(t, data)
	key, err := service.New(store, service.Options{}).Authenticate(context.Background(), strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("the printed key does not authenticate: %v", err)
	}
	if key.TenantID != "acme" || key.Role != runproof.RoleAgent {
		t.Errorf("key = %+v, want tenant acme, role agent", key)
	}
	events, err := store.ListAuditEvents(context.Background(), runproof.ListAuditParams{TenantID: "acme", Category: runproof.AuditIdentity, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Action != "keys.create" || events[0].Actor != operator(t) ||
		events[0].ActorType != runproof.OriginHuman || events[0].SourceComponent != "cli" {
		t.Errorf("audit events = %+v, want one keys.create by %s from cli", events, operator(t))
	}
}

func TestUsageErrors(t *testing.T) {
	data := t.TempDir() // holds a database and a key: export and ledger verify refuse a directory without
	if r := runCLI(t, "", "migrate", "--data", data); r.code != 0 {
		t.Fatalf("migrate: %d %s", r.code, r.stderr)
	}
	if _, err := signing.Open(filepath.Join(data, "signing-keys")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate": the commands are demo, serve, migrate, keys create`},
		{"group without subcommand", []string{"keys"}, "runproof keys create"},
		{"missing tenant", []string{"keys", "create", "--role", "admin", "--data", data}, "--tenant is required"},
		{"bad tenant", []string{"keys", "create", "--tenant", "a b", "--role", "admin", "--data", data}, "--tenant must be"},
		{"tenant with ..", []string{"keys", "create", "--tenant", "a..b", "--role", "admin", "--data", data}, "--tenant must be"},
		{"tenant .", []string{"export", "--tenant", ".", "--run", "r", "--type", "evidence", "--format", "json", "-o", "x", "--data", data}, "--tenant must be"},
		{"bad role", []string{"keys", "create", "--tenant", "acme", "--role", "root", "--data", data}, "--role must be one of viewer, exporter, auditor, admin, agent"},
		{"unknown flag", []string{"migrate", "--colour", "red"}, "flag provided but not defined: -colour"},
		{"not a postgres URL", []string{"migrate", "--database", "mysql://u:secret@db/x"}, "must be a postgres:// or postgresql:// URL"},
		{"postgres URL without a database", []string{"migrate", "--database", "postgres://u:secret@db"}, "must name a database"},
		{"postgres URL with a raw # in its password", []string{"migrate", "--database", "postgres://u:secret#x@db:5432/x"}, "percent-encode"},
		{"postgres URL with a bad port", []string{"migrate", "--database", "postgres://u:secret@db:port/x"}, "check the port"},
		{"empty --addr", []string{"serve", "--addr", "", "--data", data}, "--addr is empty"},
		{"flag given twice", []string{"keys", "create", "--tenant", "acme", "--role", "admin", "--tenant", "evil", "--data", data}, "-tenant: given twice"},
		{"empty --key", []string{"verify", "x.zip", "--key", ""}, "--key is empty"},
		{"verify from stdin", []string{"verify", "-"}, "not from standard input"},
		{"version with an argument", []string{"version", "x"}, "takes no arguments"},
		{"an --addr without its port", []string{"serve", "--addr", "18701"}, `--addr "18701" is not HOST:PORT`},
		{"an --addr with a port out of range", []string{"serve", "--addr", "127.0.0.1:99999"}, `--addr "127.0.0.1:99999" is not HOST:PORT (address 99999: invalid port)`},
		{"empty --data", []string{"migrate", "--data", ""}, "--data is empty: name a directory"},
		{"empty export --out", []string{"export", "--tenant", "acme", "--run", "r1", "--out", "", "--data", data}, "--out is empty: name a file"},
		{"empty demo --out", []string{"demo", "--out", "", "--data", data}, "--out is empty: name a directory"},
		{"empty --period-start", []string{"export", "--tenant", "acme", "--run", "r1", "--type", "soc2", "--period-start", "", "--data", data}, "--period-start is empty"},
		{"empty --checkpoint", []string{"ledger", "verify", "--tenant", "acme", "--checkpoint", "", "--data", data}, "--checkpoint is empty"},
		{"empty --signing-key", []string{"keys", "list", "--tenant", "acme", "--signing-key", "", "--data", data}, "--signing-key is empty: name a file"},
		{"empty --database", []string{"migrate", "--database", "", "--data", data}, "--database is empty: give a postgres:// URL"},
		{"empty -o", []string{"export", "--tenant", "acme", "--run", "r", "--format", "json", "-o", "", "--data", data}, "-o is empty"},
		{"control character in --prepared-by", []string{"export", "--tenant", "acme", "--run", "r", "--format", "json", "--prepared-by", "a\x01b", "--data", data}, "--prepared-by: must not hold control characters"},
		{"alias given twice", []string{"export", "--tenant", "acme", "--run", "r", "--type", "soc2", "--bundle", "evidence", "--format", "json", "--data", data}, "given twice"},
		{"long key name", []string{"keys", "create", "--tenant", "acme", "--role", "admin", "--name", strings.Repeat("n", 201), "--data", data}, "--name: must be at most 200 bytes"},
		{"agent of a viewer", []string{"keys", "create", "--tenant", "acme", "--role", "viewer", "--agent", "bot", "--data", data}, "--agent binds an agent key to its agent: give it with --role agent"},
		{"blank agent", []string{"keys", "create", "--tenant", "acme", "--role", "agent", "--agent", " ", "--data", data}, "--agent: must name the agent"},
		{"agent with spaces", []string{"keys", "create", "--tenant", "acme", "--role", "agent", "--agent", " bot", "--data", data}, "without surrounding white space"},
		{"empty agent", []string{"keys", "create", "--tenant", "acme", "--role", "agent", "--agent", "", "--data", data}, "--agent is empty"},
		{"bad log level", []string{"migrate", "--data", data, "--log-level", "loud"}, "--log-level"},
		{"policy apply without file", []string{"policy", "apply", "--tenant", "acme", "--data", data}, "name one FILE"},
		{"ingest with two files", []string{"ingest", "--tenant", "acme", "a", "b", "--data", data}, "name one FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			wantError(t, r, 2, tt.want)
			if strings.Contains(r.stderr, "secret") {
				t.Errorf("stderr shows the database password: %q", r.stderr)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "-h"}, {"help", "ingest"}, {"ingest", "-h"}, {"policy", "apply", "--help"}} {
		r := runCLI(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: runproof") || r.stderr != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, ""); r.code != 2 || !strings.Contains(r.stderr, "Usage: runproof") {
		t.Errorf("no arguments: code %d, stderr %q; want 2 and the usage", r.code, r.stderr)
	}
	// A group of commands lists its subcommands.
	for _, c := range []struct {
		args []string
		want string
	}{{[]string{"keys", "-h"}, "keys rotate-signing"}, {[]string{"help", "keys"}, "keys create"}, {[]string{"ledger", "--help"}, "ledger verify"}} {
		r := runCLI(t, "", c.args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Subcommands:") || !strings.Contains(r.stdout, c.want) || r.stderr != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q", c.args, r.code, r.stdout, r.stderr)
		}
	}
	wantError(t, runCLI(t, "", "keys"), 2, "keys: missing subcommand")
	wantError(t, runCLI(t, "", "keys", "bogus"), 2, `keys: unknown subcommand "bogus"`)
	wantError(t, runCLI(t, "", "--data", "x", "export"), 2, "flags go after it")
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		if r := runCLI(t, "", args...); r.code != 0 || r.stdout != "runproof devel\n" {
			t.Errorf("%s: code %d, stdout %q", args[0], r.code, r.stdout)
		}
	}
	if r := runCLI(t, "", "help", "keys", "--help"); r.code != 0 || !strings.Contains(r.stdout, "keys create") {
		t.Errorf("help keys --help: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "", "help", "keys", "create", "-h"); r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: runproof keys create") {
		t.Errorf("help keys create -h: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// latestSchema is the schema version the SQLite store's migrations bring a
// database to.
func latestSchema(t *testing.T) int64 {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.LatestSchema()
}

// rewind takes the SQLite database the CLI wrote in data back to schema
// version, through the Down sections of the store's migrations.
func rewind(t *testing.T, data string, version int64) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(data, "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migrations := os.DirFS(filepath.Join("..", "store", "sqlite", "migrations"))
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(context.Background(), version); err != nil {
		t.Fatalf("down to schema %d: %v", version, err)
	}
}

func TestMigrate(t *testing.T) {
	latest := latestSchema(t)
	// A data directory whose parent is missing is most likely mistyped:
	// refused, nothing made.
	parent := filepath.Join(t.TempDir(), "fresh")
	wantError(t, runCLI(t, "", "migrate", "--data", filepath.Join(parent, "dir")), 1, parent+" does not exist; create it first")
	if _, err := os.Stat(parent); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused data directory's parent: %v", err)
	}
	data := parent
	r := runCLI(t, "", "migrate", "--data", data)
	if want := fmt.Sprintf("schema migrated (sqlite): from version 0 to %d, the latest this runproof knows\n", latest); r.code != 0 || r.stdout != want {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	fi, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode = %v, want 0700", fi.Mode().Perm())
	}
	want := fmt.Sprintf("schema up to date (sqlite): version %d, the latest this runproof knows\n", latest)
	if r := runCLI(t, "", "migrate", "--data", data); r.code != 0 || r.stdout != want {
		t.Errorf("second migrate: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// An upgrade is logged, before and after: it may take minutes.
	if strings.Contains(r.stderr, "upgrading") {
		t.Errorf("a new database's schema is logged as an upgrade: %s", r.stderr)
	}
	rewind(t, data, 17)
	r = runCLI(t, "", "migrate", "--data", data)
	if r.code != 0 || r.stdout != fmt.Sprintf("schema migrated (sqlite): from version 17 to %d, the latest this runproof knows\n", latest) ||
		!strings.Contains(r.stderr, "upgrading the database schema") || !strings.Contains(r.stderr, "database schema upgraded") {
		t.Errorf("upgrade: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// A file that is no database is named as such, as by every command.
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.MkdirAll(junk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "runproof.db"), bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	wantError(t, runCLI(t, "", "migrate", "--data", junk), 1, "cannot use "+filepath.Join(junk, "runproof.db"))
}

const policiesYAML = `# limits for the checkout agents
- name: cost-cap
  type: cost_limit
  threshold: 100
  action: stop
- name: no-shell
  type: step_type_denied
  step_types: [shell]
  action: warn
`

func TestPolicyApply(t *testing.T) {
	data := t.TempDir()
	// Flags after the file: the order users type.
	r := runCLI(t, "", "policy", "apply", writeFile(t, "p.yaml", policiesYAML), "--tenant", "acme", "--data", data)
	if r.code != 0 {
		t.Fatalf("yaml: code %d, stderr %q", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^cost-cap +cost_limit +v1 +\S+\nno-shell +step_type_denied +v1 +\S+\n$`).MatchString(r.stdout) {
		t.Errorf("yaml: stdout = %q", r.stdout)
	}

	json := `[{"name": "cost-cap", "type": "cost_limit", "threshold": 250.5, "action": "stop"}]`
	r = runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", data, writeFile(t, "p.json", json))
	if r.code != 0 || !regexp.MustCompile(`^cost-cap +cost_limit +v2 +\S+\n$`).MatchString(r.stdout) {
		t.Fatalf("json: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// A single object from stdin, in YAML without an extension to tell.
	r = runCLI(t, "name: tokens\ntype: token_limit\nthreshold: 5000\naction: warn\n", "policy", "apply", "--tenant", "acme", "--data", data, "-")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "tokens ") {
		t.Fatalf("stdin: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	store := openStore(t, data)
	active, err := store.ActivePolicies(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range active {
		got = append(got, fmt.Sprintf("%s v%d %s", p.Name, p.Version, p.Threshold))
	}
	if want := []string{"cost-cap v2 250.5", "no-shell v1 ", "tokens v1 5000"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("active policies = %q, want %q", got, want)
	}
	events, err := store.ListAuditEvents(context.Background(), runproof.ListAuditParams{TenantID: "acme", Category: runproof.AuditWrite, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 || events[0].Action != "policies.apply" {
		t.Errorf("audit events = %+v, want 4 policies.apply", events)
	}
}

// TestPolicyListAndRetire: policy retire takes a name or an id, and the
// retired policy leaves policy list until its name is applied again.
func TestPolicyListAndRetire(t *testing.T) {
	data := t.TempDir()
	if r := runCLI(t, "", "policy", "list", "--tenant", "acme", "--data", data); r.code == 0 || !strings.Contains(r.stderr, "no runproof database") {
		t.Errorf("list before anything was recorded: code %d, stderr %q", r.code, r.stderr)
	}
	file := writeFile(t, "p.yaml", policiesYAML)
	if r := runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", data, file); r.code != 0 {
		t.Fatalf("apply: code %d, stderr %q", r.code, r.stderr)
	} else if !strings.Contains(r.stderr, "the tenant has no API key: is --tenant right?") { // a tenant no key reads
		t.Errorf("apply for a tenant with no key: stderr %q, want a warning", r.stderr)
	}
	r := runCLI(t, "", "policy", "list", "--tenant", "acme", "--data", data)
	if r.code != 0 || !regexp.MustCompile(`^NAME +TYPE +THRESHOLD +ACTION +VERSION +ID\ncost-cap +cost_limit +100 +stop +v1 +(\S+)\nno-shell +step_type_denied +shell +warn +v1 +\S+\n$`).MatchString(r.stdout) {
		t.Fatalf("list: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	id := strings.Fields(strings.Split(r.stdout, "\n")[1])[5]

	if r := runCLI(t, "", "policy", "retire", "--tenant", "acme", "--data", data, "cost-cap"); r.code != 0 || !strings.HasPrefix(r.stdout, `retired "cost-cap" (cost_limit, `+id+") as v2") {
		t.Fatalf("retire by name: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct{ which, says string }{
		{id, "was retired at"}, // by id: it is there, retired
		{"cost-cap", `no active policy named "cost-cap"`},
		{"nope", `no active policy named "nope"`},
	} {
		if r := runCLI(t, "", "policy", "retire", "--tenant", "acme", "--data", data, tc.which); r.code != 1 || !strings.Contains(r.stderr, tc.says) ||
			strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("retire %s again: code %d, stderr %q, want one line saying %q", tc.which, r.code, r.stderr, tc.says)
		}
	}
	if r := runCLI(t, "", "policy", "retire", "--tenant", "globex", "--data", data, id); r.code != 1 || !strings.Contains(r.stderr, "tenant globex has no active policy") {
		t.Errorf("another tenant's policy: code %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "", "policy", "list", "--tenant", "acme", "--data", data); r.code != 0 || strings.Contains(r.stdout, "cost-cap") {
		t.Errorf("list after retiring: code %d, stdout %q", r.code, r.stdout)
	}
	// The retired one comes back as its next version; the active one, the
	// same, is left as it is.
	if r := runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", data, file); r.code != 0 || !strings.Contains(r.stdout, "cost-cap  cost_limit        v3") ||
		!regexp.MustCompile(`no-shell +step_type_denied +v1 +\S+ +unchanged\n`).MatchString(r.stdout) {
		t.Errorf("apply again: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	events, err := openStore(t, data).ListAuditEvents(context.Background(), runproof.ListAuditParams{TenantID: "acme", Category: runproof.AuditWrite, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range events {
		actions = append(actions, ev.Action)
	}
	if want := "[policies.apply policies.retire policies.apply policies.apply]"; fmt.Sprint(actions) != want {
		t.Errorf("audit actions, newest first: %v, want %s", actions, want)
	}

	// A policy named as another's id: the id wins, since the other goes
	// by its own id too.
	noShell := strings.Fields(strings.Split(runCLI(t, "", "policy", "list", "--tenant", "acme", "--data", data).stdout, "\n")[2])[5]
	named := writeFile(t, "named.yaml", "- name: "+noShell+"\n  type: step_limit\n  threshold: 3\n  action: stop\n")
	if r := runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", data, named); r.code != 0 {
		t.Fatalf("apply: code %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "", "policy", "retire", "--tenant", "acme", "--data", data, noShell); r.code != 0 || !strings.HasPrefix(r.stdout, `retired "no-shell"`) {
		t.Errorf("a name that is another's id: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestPolicyApplyRefusesBadFiles(t *testing.T) {
	tests := []struct {
		name, file, content, want string
	}{
		{"bad threshold", "p.yaml", policiesYAML + "- name: zero\n  type: step_limit\n  threshold: 0\n  action: stop\n",
			`p.yaml: policy 3 ("zero"): threshold: must be greater than zero`},
		{"unknown field", "p.json", `[{"name": "a", "type": "step_limit", "threshold": 3, "action": "stop", "colour": "red"}]`,
			"policy 1: colour: is not a known field"},
		{"threshold not a number", "p.json", `{"name": "a", "type": "step_limit", "threshold": "three", "action": "stop"}`,
			"policy 1: threshold: must be a number"},
		{"two faults", "p.json", `{"name": " ", "type": "cost_limit", "threshold": 3, "action": "explode"}`,
			`name: is required; action: must be "stop" or "warn"`},
		{"threshold spaced", "p.json", `{"name": "a", "type": "step_limit", "threshold": " 3 ", "action": "stop"}`,
			"policy 1: threshold: must be a number"},
		{"threshold true", "p.json", `{"name": "a", "type": "step_limit", "threshold": true, "action": "stop"}`,
			"policy 1: threshold: must be a number"},
		{"bad type", "p.yml", "- name: a\n  type: nope\n  action: stop\n", `policy 1 ("a"): type: must be one of`},
		{"two bad policies", "p.yml", "- name: a\n  type: nope\n  action: stop\n" + policiesYAML + "- name: zero\n  type: step_limit\n  threshold: 0\n  action: stop\n",
			`policy 1 ("a"): type: must be one of token_limit, cost_limit, step_limit, duration_limit, step_type_denied, expression; ` +
				`policy 4 ("zero"): threshold: must be greater than zero (no policy was added)`},
		{"not YAML", "p.yaml", "- name: [\n", "not valid YAML"},
		{"a YAML octal", "p.yaml", "- name: a\n  type: step_limit\n  threshold: 010\n  action: stop\n",
			"line 3: 010 is not a plain number"},
		{"a name twice", "p.yaml", "- name: a\n  type: step_limit\n  threshold: 3\n  action: stop\n- name: a\n  type: step_limit\n  threshold: 4\n  action: stop\n",
			`policy 2 ("a"): the name of policy 1 too`},
		{"a name twice, once spaced", "p.yaml", "- name: a\n  type: step_limit\n  threshold: 3\n  action: stop\n- name: \"a \"\n  type: step_limit\n  threshold: 4\n  action: stop\n",
			`policy 2 ("a "): the name of policy 1 too`},
		{"a YAML boolean", "p.yaml", "- name: true\n  type: step_limit\n  threshold: 3\n  action: stop\n",
			"policy 1: name: must be a string"},
		{"not JSON", "p.json", `[{"name": }]`, "the file is not valid JSON"},
		{"a member twice", "p.json", `[{"name": "a", "type": "step_limit", "threshold": 3, "action": "stop"}, {"name": "b", "name": "c"}]`,
			"policy 2: name: is given twice"},
		{"empty list", "p.json", `[]`, "empty list"},
		{"empty file", "p.yaml", "", "holds no policies"},
		{"two YAML documents", "p.yaml", "name: a\ntype: step_limit\nthreshold: 3\naction: stop\n---\nname: b\ntype: step_limit\nthreshold: 4\naction: stop\n",
			"holds more than one YAML document (the --- at line 5 begins a second)"},
		{"no such file", "", "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			path := filepath.Join(t.TempDir(), "missing.json")
			if tt.file != "" {
				path = writeFile(t, tt.file, tt.content)
			}
			r := runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", data, path)
			code := 1 // a file that holds no policies to apply
			if tt.file == "" {
				code = 2 // no such file: a wrong argument
			}
			wantError(t, r, code, tt.want)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			active, err := openStore(t, data).ActivePolicies(context.Background(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			if len(active) != 0 {
				t.Errorf("%d policies stored, want none", len(active))
			}
		})
	}
}

// stampBase is an hour before the tests started: step times n seconds
// after it are not in the future, and the same n is the same time in every
// test.
var stampBase = time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

// stamp is the step time n seconds after stampBase.
func stamp(n int) string {
	return stampBase.Add(time.Duration(n) * time.Second).Format(time.RFC3339)
}

func TestIngest(t *testing.T) {
	data := t.TempDir()
	if r := runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", data, writeFile(t, "p.yaml", policiesYAML)); r.code != 0 {
		t.Fatal(r.stderr)
	}
	var in strings.Builder
	fmt.Fprintf(&in, `{"run": {"run_id": "r1", "agent_id": "checkout", "goal": "buy", "started_at": %q}}`+"\n", stamp(0))
	for i, cost := range []string{"30", "30", "30", "30", "10"} { // 30, 60, 90 (>= 80 %), 120 (over 100), after the stop
		fmt.Fprintf(&in, `{"step": {"run_id": "r1", "step_index": %d, "timestamp": %q, "step_type": "llm", "input_tokens": 10, "output_tokens": 5, "cost_cents": %s, "content": {"i": %d}}}`+"\n",
			i, stamp(i+1), cost, i)
	}
	fmt.Fprintf(&in, `{"complete": {"run_id": "r1", "status": "completed", "completed_at": %q}}`+"\n\n", stamp(10))
	fmt.Fprintf(&in, `{"run": {"run_id": "r2", "agent_id": "checkout", "started_at": %q}}`+"\n", runproof.FormatTime(time.Now().Add(-time.Hour)))
	fmt.Fprintf(&in, `{"step": {"run_id": "r2", "step_index": 0, "timestamp": %q, "step_type": "llm", "cost_cents": 1}}`+"\n", stamp(1))
	file := writeFile(t, "runs.ndjson", in.String())

	r := runCLI(t, "", "ingest", file, "--tenant", "acme", "--data", data)
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	want := "runs: 2 (2 new)\nsteps: 6 (6 new)\nincidents opened: 1\nstop decisions: 1\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	// A mistyped tenant has no policies: its steps are stored unjudged, and
	// the summary says so.
	if r := runCLI(t, "", "ingest", file, "--tenant", "acmee", "--data", data); r.code != 0 || !strings.Contains(r.stdout, "policies: none") {
		t.Errorf("ingest into a tenant without policies: %d %q", r.code, r.stdout)
	}

	ctx := context.Background()
	store := openStore(t, data)
	steps, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, fmt.Sprintf("%s/%t", s.Status, s.IsInflection))
	}
	if want := "[ok/false ok/false warning/false violation/true violation/false]"; fmt.Sprint(got) != want {
		t.Errorf("statuses/inflection = %v, want %s", got, want)
	}
	run, err := store.GetRun(ctx, "acme", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != runproof.RunStopped || run.CompletedAt == nil || run.IncidentID == "" {
		t.Errorf("run = %+v, want stopped, completed, with an incident", run)
	}
	incidents, err := store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(incidents) != 1 || incidents[0].RunID != "r1" || incidents[0].InflectionStepIndex != 3 || incidents[0].PolicyName != "cost-cap" {
		t.Errorf("incidents = %+v, want one on r1 at step 3 for cost-cap", incidents)
	}

	// Re-sending the same file is a no-op.
	r = runCLI(t, "", "ingest", "--tenant", "acme", "--data", data, file)
	want = "runs: 2 (0 new)\nsteps: 6 (0 new)\nincidents opened: 0\nstop decisions: 0\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("re-send: code %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, want)
	}
	if incidents, _ := store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "acme"}); len(incidents) != 1 {
		t.Errorf("after re-send: %d incidents, want 1", len(incidents))
	}
	events, err := store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "acme", Category: runproof.AuditWrite, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	ingests, starts := 0, 0
	for _, e := range events {
		if e.Action == "ingest" && e.Actor == operator(t) && e.SourceComponent == "cli" {
			ingests++
			if strings.HasSuffix(e.Detail, ": started") {
				starts++
			}
		}
	}
	if ingests != 4 || starts != 2 { // each run's start, and its end with what it stored
		t.Errorf("%d ingest audit events, %d of starts; want 4, 2", ingests, starts)
	}
}

func TestIngestStopsAtTheFirstBadLine(t *testing.T) {
	run := fmt.Sprintf(`{"run": {"run_id": "r1", "agent_id": "a", "started_at": %q}}`, stamp(0))
	step := func(i int, cost string) string {
		return fmt.Sprintf(`{"step": {"run_id": "r1", "step_index": %d, "timestamp": %q, "step_type": "llm", "cost_cents": %s}}`, i, stamp(i), cost)
	}
	tests := []struct {
		name      string
		lines     []string
		want      string
		wantSteps int // stored before the bad line
	}{
		{"negative cost", []string{run, step(0, "1"), step(1, "2"), step(2, "-1"), step(3, "1")},
			"runs.ndjson: line 4: cost_cents: must not be negative", 2},
		{"unknown field", []string{run, step(0, "1"), `{"step": {"run_id": "r1", "colour": "red"}}`},
			"line 3: colour: is not a known field", 1},
		{"cost as a string", []string{run, step(0, `"1"`)}, "line 2: cost_cents: must be a JSON number", 0},
		{"gap in indexes", []string{run, step(0, "1"), step(2, "1")}, "line 3: step_index: must be 1", 1},
		{"unknown run", []string{step(0, "1")}, `line 1: run_id: run "r1" does not exist`, 0},
		{"two kinds", []string{`{"run": {"run_id": "r1", "agent_id": "a"}, "complete": {"run_id": "r1"}}`},
			`line 1: must hold exactly one of "run", "step" or "complete"`, 0},
		{"not JSON", []string{run, step(0, "1"), "{"}, "line 3: the line is not valid JSON", 1},
		{"run without id", []string{`{"run": {"agent_id": "a"}}`}, "line 1: run_id: is required", 0},
		{"run without start", []string{`{"run": {"run_id": "r1", "agent_id": "a"}}`}, "line 1: started_at: is required by ingest", 0},
		// Two bad steps in one call: one found by the checks of each step,
		// one only against its run; those before the first are stored.
		{"two bad steps", []string{run, step(0, "1"), step(1, "1"),
			`{"step": {"run_id": "r1", "step_index": 2, "timestamp": "2000-01-02T00:00:00Z", "step_type": "llm"}}`,
			step(3, "1"), step(4, "-1")}, "line 4: timestamp: is more than", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			file := writeFile(t, "runs.ndjson", strings.Join(tt.lines, "\n")+"\n")
			r := runCLI(t, "", "ingest", "--tenant", "acme", "--data", data, file)
			wantError(t, r, 1, tt.want)
			if first := strings.Contains(tt.want, "line 1:"); first != strings.Contains(r.stderr, "nothing was stored") ||
				!first && !strings.Contains(r.stderr, "lines before it are stored") {
				t.Errorf("stderr %q does not say what was stored", r.stderr)
			}
			// The summary of what was stored before the bad line.
			if summary := fmt.Sprintf("steps: %d (%d new)\n", tt.wantSteps, tt.wantSteps); strings.Contains(tt.want, "line 1:") && r.stdout != "" ||
				!strings.Contains(tt.want, "line 1:") && !strings.Contains(r.stdout, summary) {
				t.Errorf("stdout %q, want the summary of what was stored (%q)", r.stdout, summary)
			}
			steps, err := openStore(t, data).ListSteps(context.Background(), runproof.ListStepsParams{TenantID: "acme", RunID: "r1"})
			if err != nil && runproof.ErrorCode(err) != runproof.ENOTFOUND {
				t.Fatal(err)
			}
			if len(steps) != tt.wantSteps {
				t.Errorf("%d steps stored, want %d", len(steps), tt.wantSteps)
			}
		})
	}
}

// TestIngestResumesRunWithoutStart: a run line without started_at, which
// an earlier runproof stored as starting then, is read on, so that its
// file resumes; a new run without it is refused.
func TestIngestResumesRunWithoutStart(t *testing.T) {
	data := t.TempDir()
	if _, _, err := service.New(openStore(t, data), service.Options{}).CreateRun(context.Background(), "acme",
		service.RunInput{RunID: "old", AgentID: "a"}); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "runs.ndjson", `{"run": {"run_id": "old", "agent_id": "a"}}`+"\n"+
		fmt.Sprintf(`{"step": {"run_id": "old", "step_index": 0, "timestamp": %q, "step_type": "llm"}}`, runproof.FormatTime(time.Now()))+"\n")
	if r := runCLI(t, "", "ingest", "--tenant", "acme", "--data", data, file); r.code != 0 || !strings.Contains(r.stdout, "steps: 1 (1 new)") {
		t.Errorf("resuming a run stored without started_at: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestIngestByteOrderMark: a file an editor began with a byte order mark
// is read as without it.
func TestIngestByteOrderMark(t *testing.T) {
	file := writeFile(t, "runs.ndjson", "\ufeff"+fmt.Sprintf(`{"run": {"run_id": "r1", "agent_id": "a", "started_at": %q}}`, stamp(0))+"\n")
	if r := runCLI(t, "", "ingest", "--tenant", "acme", "--data", t.TempDir(), file); r.code != 0 || !strings.Contains(r.stdout, "runs: 1") {
		t.Errorf("a file with a byte order mark: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// A step re-sent with other content is named by its line, as a bad line.
func TestIngestConflictNamesTheLine(t *testing.T) {
	data := t.TempDir()
	lines := func(cost string) string {
		return fmt.Sprintf(`{"run": {"run_id": "r1", "agent_id": "a", "started_at": %q}}`, stamp(0)) + "\n" +
			fmt.Sprintf(`{"step": {"run_id": "r1", "step_index": 0, "timestamp": %q, "step_type": "llm", "cost_cents": 1}}`, stamp(0)) + "\n" +
			fmt.Sprintf(`{"step": {"run_id": "r1", "step_index": 1, "timestamp": %q, "step_type": "llm", "cost_cents": %s}}`, stamp(1), cost) + "\n"
	}
	if r := runCLI(t, "", "ingest", "--tenant", "acme", "--data", data, writeFile(t, "a.ndjson", lines("1"))); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := runCLI(t, "", "ingest", "--tenant", "acme", "--data", data, writeFile(t, "b.ndjson", lines("2")))
	wantError(t, r, 1, "b.ndjson: line 3: step 1 is already stored with other content")
	if strings.Contains(r.stderr, "steps[") {
		t.Errorf("stderr %q names the step by its place in a call, not by its line", r.stderr)
	}
}

// A store that fails is not the line's fault: ingest names the failure
// and does not ask for the line to be mended.
func TestIngestStoreFailureIsNotTheLines(t *testing.T) {
	file := writeFile(t, "runs.ndjson", fmt.Sprintf(`{"run": {"run_id": "r1", "agent_id": "a", "started_at": %q}}`, stamp(0))+"\n"+
		fmt.Sprintf(`{"step": {"run_id": "r1", "step_index": 0, "timestamp": %q, "step_type": "llm", "cost_cents": 1}}`, stamp(0))+"\n")
	for _, c := range []struct{ table, when, want string }{
		{"steps", "", "runs.ndjson: insert steps: "},
		// Every line stored, the audit event of the end alone failed: nothing stopped.
		{"audit_events", "WHEN NEW.detail NOT LIKE '%: started'", "runs.ndjson: the input was stored but the audit event could not be recorded: "},
		{"audit_events", "", "runs.ndjson: nothing was stored: the audit event of the start could not be recorded: "},
	} {
		t.Run(c.table, func(t *testing.T) {
			data := t.TempDir()
			openStore(t, data) // the schema, for the trigger
			db, err := sql.Open("sqlite", filepath.Join(data, "runproof.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`CREATE TRIGGER fail BEFORE INSERT ON ` + c.table + ` ` + c.when + ` BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END`); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, "", "ingest", "--tenant", "acme", "--data", data, file)
			wantError(t, r, 1, c.want)
			if !strings.Contains(r.stderr, "the disk is on fire") || strings.Contains(r.stderr, "line 2") || strings.Contains(r.stderr, "fix it") {
				t.Errorf("stderr %q blames the line, or not the store", r.stderr)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe to read while a server writes its log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServe(t *testing.T) {
	t.Setenv(cli.DatabaseURLEnv, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	data := t.TempDir()
	// A database missing a guard trigger is served, and said to be.
	if r := runCLI(t, "", "migrate", "--data", data); r.code != 0 {
		t.Fatalf("migrate: %d %s", r.code, r.stderr)
	}
	if err := openStore(t, data).(*sqlite.Store).ExecRaw(ctx, "DROP TRIGGER steps_no_delete"); err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- cli.Main(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data}, strings.NewReader(""), &stdout, &stderr)
	}()

	addrRE := regexp.MustCompile(`msg=listening addr=(127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		default:
		}
	}
	if addr == "" {
		t.Fatalf("no listening line in the log: %q", stderr.String())
	}
	if !regexp.MustCompile(`msg=listening addr=\S+ version=devel engine=sqlite data=\S+ signing_key=\S+`).MatchString(stderr.String()) {
		t.Errorf("the listening line does not say the version, engine, data directory and signing key: %q", stderr.String())
	}
	if !strings.Contains(stderr.String(), `level=ERROR msg="the database lacks guard triggers as runproof made them" problem="1 of the database's guard triggers is gone, disabled or changed: steps_no_delete on steps (migration 001_init.sql).`) {
		t.Errorf("no word of the missing trigger: %q", stderr.String())
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}

	// The start is recorded with the key it signs with.
	uses := func() string {
		b, err := os.ReadFile(filepath.Join(data, "signing-keys", "uses"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := uses()
	if strings.Count(before, "\n") != 1 || !strings.Contains(before, " ed25519:") {
		t.Errorf("starts recorded: %q", before)
	}
	// A second server on the same address fails with one clear line, and
	// records no start: it signed nothing.
	r := runCLI(t, "", "serve", "--addr", addr, "--data", data)
	wantError(t, r, 1, "already in use")
	if after := uses(); after != before {
		t.Errorf("a server that could not listen recorded a start: %q", after)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited with %d after cancel: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of cancel")
	}
}

func TestDemoTwiceThenExport(t *testing.T) {
	dir := t.TempDir()
	data, out := filepath.Join(dir, "data"), filepath.Join(dir, "out")
	// An --out that cannot be a directory is refused before anything is seeded.
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantError(t, runCLI(t, "", "demo", "--data", data, "--out", notDir), 2, "--out "+notDir)
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the refused demo made its data directory: %v", err)
	}
	first := runCLI(t, "", "demo", "--data", data, "--out", out)
	if first.code != 0 {
		t.Fatalf("demo: %d %s", first.code, first.stderr)
	}
	for _, want := range []string{"36 runs", "5 incidents", "Run spending cap", "executive_debrief", "soc2", "Verified 3 ZIPs"} {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, first.stdout)
		}
	}
	second := runCLI(t, "", "demo", "--data", data, "--out", out)
	if second.code != 0 || !strings.Contains(second.stdout, "already seeded") {
		t.Fatalf("second demo: %d %s %s", second.code, second.stdout, second.stderr)
	}
	store := openStore(t, data)
	ctx := context.Background()
	recs, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: "demo", Limit: 100})
	if err != nil || len(recs) != 24 {
		t.Fatalf("%d export records after two demos, want 24 (%v)", len(recs), err)
	}
	for _, rec := range recs {
		if rec.Status != runproof.ExportCompleted || rec.Origin != runproof.OriginSystem || rec.SourceComponent != "demo" || rec.DeliveredAt == nil {
			t.Errorf("demo export record %+v", rec)
		}
	}
	for _, name := range []string{"evidence.json", "evidence.csv", "evidence.pdf", "evidence.zip", "soc2.json", "soc2.csv",
		"soc2.pdf", "soc2.zip", "executive-debrief.json", "executive-debrief.csv", "executive-debrief.pdf", "executive-debrief.zip"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, rec := range recs[:12] { // the latest demo's exports
			found = found || rec.Checksum == runproof.DigestBytes(b)
		}
		if !found {
			t.Errorf("%s matches no checksum of the latest exports", name)
		}
	}

	// runproof incidents list shows the incidents to export, latest first
	listed := runCLI(t, "", "incidents", "list", "--data", data, "--tenant", "demo", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(listed.stdout), "\n")
	if listed.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "INCIDENT  ") || !strings.Contains(listed.stderr, "list them with --offset 2") {
		t.Fatalf("incidents list: %d\n%s%s", listed.code, listed.stdout, listed.stderr)
	}
	all, err := store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "demo", Limit: 10})
	if err != nil || len(all) != 5 || !strings.HasPrefix(lines[1], all[0].ID+"  "+all[0].RunID) {
		t.Errorf("incidents list's first line %q; want the latest of %d incidents, %v", lines[1], len(all), err)
	}
	rest := runCLI(t, "", "incidents", "list", "--data", data, "--tenant", "demo", "--limit", "3", "--offset", "2")
	if lines := strings.Split(strings.TrimSpace(rest.stdout), "\n"); rest.code != 0 || len(lines) != 4 || rest.stderr != "" ||
		!strings.HasPrefix(lines[1], all[2].ID+"  ") || !strings.HasPrefix(lines[3], all[4].ID+"  ") {
		t.Errorf("incidents list of the last 3 of %d: %d\n%s%s", len(all), rest.code, rest.stdout, rest.stderr)
	}
	past := runCLI(t, "", "incidents", "list", "--data", data, "--tenant", "demo", "--offset", "5")
	if past.code != 0 || past.stdout != "" || !strings.Contains(past.stderr, "past the first 5") {
		t.Errorf("incidents list past the end: %d %q %q", past.code, past.stdout, past.stderr)
	}
	pending := runCLI(t, "", "incidents", "list", "--data", data, "--tenant", "demo", "--remediation", "completed")
	if pending.code != 0 || pending.stdout != "" || !strings.Contains(pending.stderr, "no incident that matches") {
		t.Errorf("incidents list of completed remediations: %d %q %q", pending.code, pending.stdout, pending.stderr)
	}
	wantError(t, runCLI(t, "", "incidents", "list", "--data", data, "--tenant", "demo", "--remediation", "done"), 2, "give one of pending")
	wantError(t, runCLI(t, "", "incidents", "list", "--data", data, "--tenant", "demo", "--limit", "0"), 2, "from 1 to 1000")
	wantError(t, runCLI(t, "", "incidents", "list", "--data", data, "--tenant", "demo", "--offset", "-1"), 2, "give 0 or more")

	// runproof export, to a file and to stdout
	inc := recs[0].IncidentID
	file := filepath.Join(dir, "debrief.csv")
	r := runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--incident", inc, "--type", "executive_debrief",
		"--format", "csv", "-o", file, "--reason", "board meeting")
	if r.code != 0 {
		t.Fatalf("export: %d %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(b), "field,value\n") {
		t.Fatalf("exported file %q: %v", b, err)
	}
	rec, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: "demo", Limit: 1})
	if err != nil || rec[0].Checksum != runproof.DigestBytes(b) || rec[0].Origin != runproof.OriginHuman ||
		rec[0].SourceComponent != "cli" || rec[0].ExportReason != "board meeting" || !strings.HasPrefix(rec[0].RequestedBy, "cli") {
		t.Fatalf("record of the CLI export: %+v, %v", rec, err)
	}
	evs, err := store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "demo", Category: runproof.AuditWrite, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Action != "export" || evs[0].Resource != "export/"+rec[0].ID ||
		evs[0].Detail != "executive_debrief csv of incident "+inc+": completed" {
		t.Fatalf("audit event of the CLI export: %+v, %v", evs, err)
	}
	r = runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", "demo-run-001", "--out", "-")
	if r.code != 0 || !strings.HasPrefix(r.stdout, `{"agent_id":`) {
		t.Fatalf("export to stdout: %d %.200s %s", r.code, r.stdout, r.stderr)
	}

	// A link is written through, and a named pipe is written into, never
	// replaced by a file.
	target, link, fifo := filepath.Join(dir, "target.json"), filepath.Join(dir, "link.json"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(target, nil, 0o600); err != nil { // a private file stays private
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", "demo-run-001", "-o", link); r.code != 0 {
		t.Fatalf("export through a link: %s", r.stderr)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if b, err := os.ReadFile(target); err != nil || !strings.HasPrefix(string(b), `{"agent_id":`) {
		t.Errorf("the link's target holds %.40q, %v", b, err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file replaced is now %v, %v; want its mode, 0600, kept", fi.Mode(), err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte)
	go func() {
		b, _ := os.ReadFile(fifo)
		read <- b
	}()
	if r := runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", "demo-run-001", "-o", fifo); r.code != 0 {
		t.Fatalf("export into a named pipe: %s", r.stderr)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the named pipe was replaced: %v %v", fi.Mode(), err) // and its reader waits for ever
	}
	if b := <-read; !strings.HasPrefix(string(b), `{"agent_id":`) {
		t.Errorf("the pipe carried %.40q", b)
	}
	// A link to an anonymous pipe, as /dev/stdout is when piped into jq.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutLike := filepath.Join(dir, "stdout")
	if err := os.Symlink(fmt.Sprintf("/proc/self/fd/%d", pw.Fd()), stdoutLike); err != nil {
		t.Fatal(err)
	}
	go func() { b, _ := io.ReadAll(pr); read <- b }()
	r = runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", "demo-run-001", "-o", stdoutLike)
	pw.Close()
	if r.code != 0 {
		t.Fatalf("export into a link to a pipe: %s", r.stderr)
	}
	if fi, err := os.Lstat(stdoutLike); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link to the pipe was replaced: %v %v", fi.Mode(), err)
	}
	if b := <-read; !strings.HasPrefix(string(b), `{"agent_id":`) {
		t.Errorf("the anonymous pipe carried %.40q", b)
	}

	wantError(t, runCLI(t, "", "export", "--data", data, "--tenant", "demo"), 2, "give --incident ID or --run ID")
	wantError(t, runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--incident", inc, "--run", "demo-run-001"), 2, "one of them")
	wantError(t, runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--incident", inc, "--type", "pdf"), 2, "--type: must be")
	wantError(t, runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", "demo-run-001", "--bundle", "executive_debrief"),
		2, "has no incident")
	wantError(t, runCLI(t, "", "export", "--data", data, "--tenant", "other", "--incident", inc), 2, "--incident: no such incident")

	// An --out that is a directory is refused before anything is exported.
	before, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: "demo", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", "demo-run-001", "-o", dir), 2, "is a directory")
	if after, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: "demo", Limit: 1}); err != nil || after[0].ID != before[0].ID {
		t.Errorf("an export was made for an --out that cannot be written: %+v, %v", after, err)
	}
}

func TestRotateSigningKey(t *testing.T) {
	data := t.TempDir()
	// A data directory without a key is most likely not the server's.
	wantError(t, runCLI(t, "", "keys", "rotate-signing", "--data", data), 1,
		"no signing key in "+filepath.Join(data, "signing-keys")+" to rotate: give --data")
	if _, err := signing.Open(filepath.Join(data, "signing-keys")); err != nil { // as serve does on first use
		t.Fatal(err)
	}
	first := runCLI(t, "", "keys", "rotate-signing", "--data", data)
	second := runCLI(t, "", "keys", "rotate-signing", "--data", data)
	if first.code != 0 || second.code != 0 || first.stdout == second.stdout || !strings.HasPrefix(second.stdout, "ed25519:") ||
		!strings.Contains(second.stderr, "BEGIN PUBLIC KEY") {
		t.Fatalf("rotations: %+v %+v", first, second)
	}
	files, _ := filepath.Glob(filepath.Join(data, "signing-keys", "*.pem"))
	if len(files) != 3 { // the first key, created on first use, and two rotations
		t.Errorf("%d key files, want 3", len(files))
	}
}

// TestRotateSigningKeyOfAnotherLedger: keys that did not sign the
// database's ledger (another deployment's, as a default --data next to a
// --database names) are not rotated.
func TestRotateSigningKeyOfAnotherLedger(t *testing.T) {
	dir := t.TempDir()
	data, other := filepath.Join(dir, "data"), filepath.Join(dir, "other")
	if r := runCLI(t, "", "demo", "--data", data, "--out", filepath.Join(dir, "out")); r.code != 0 {
		t.Fatalf("demo: %d %s", r.code, r.stderr)
	}
	if _, err := signing.Open(filepath.Join(other, "signing-keys")); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join(data, "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "runproof.db"), db, 0o600); err != nil {
		t.Fatal(err)
	}
	wantError(t, runCLI(t, "", "keys", "rotate-signing", "--data", other), 1,
		"the keys in "+filepath.Join(other, "signing-keys")+" did not sign the ledger of tenant demo in this database")
	if files, _ := filepath.Glob(filepath.Join(other, "signing-keys", "*.pem")); len(files) != 1 {
		t.Errorf("%d key files after a refused rotation, want 1", len(files))
	}
	if r := runCLI(t, "", "keys", "rotate-signing", "--data", data); r.code != 0 {
		t.Errorf("rotating the keys that signed the ledger: %d %s", r.code, r.stderr)
	}
}

// TestIngestStdinInterrupted: Ctrl-C ends `ingest -` even while it waits
// for input that has not come.
func TestIngestStdinInterrupted(t *testing.T) {
	t.Setenv(cli.DatabaseURLEnv, "")
	stdin, w := io.Pipe() // nothing is ever written
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"ingest", "--tenant", "acme", "--data", t.TempDir(), "-"}, stdin, io.Discard, &stderr)
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case code := <-done:
		if code == 0 {
			t.Errorf("exit code 0 after an interrupt: %s", stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ingest - did not stop within 10 s of the interrupt")
	}
}

// TestPolicyApplyYAMLEnds: a YAML file ending with "---", or holding a
// document of comments alone, is one document of policies.
func TestPolicyApplyYAMLEnds(t *testing.T) {
	for _, content := range []string{policiesYAML + "---\n", "---\n" + policiesYAML + "---\n# end\n"} {
		data := t.TempDir()
		if r := runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", data, writeFile(t, "p.yaml", content)); r.code != 0 {
			t.Errorf("%q: %d %s", content, r.code, r.stderr)
		}
	}
}

// TestInputDirectory: a directory named for a file to read is a wrong
// argument, said as such.
func TestInputDirectory(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{{"ingest", "--tenant", "acme", "--data", data, dir}, {"policy", "apply", "--tenant", "acme", "--data", data, dir}} {
		wantError(t, runCLI(t, "", args...), 2, dir+" is a directory: name a file (or - for stdin)")
	}
}

// TestServeWithoutItsDatabase: a data directory a server has signed from,
// with no SQLite database in it (its server used PostgreSQL, and the URL
// is missing), is not served from a new, empty database.
func TestServeWithoutItsDatabase(t *testing.T) {
	data := t.TempDir()
	kr, err := signing.Open(filepath.Join(data, "signing-keys"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.BeginUse(time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"migrate"}, {"keys", "create", "--tenant", "acme", "--role", "admin"}, {"keys", "rotate-signing"}} {
		r := runCLI(t, "", append(args, "--data", data)...)
		wantError(t, r, 1, "a server has signed from "+data+" before: if it used PostgreSQL, set RUNPROOF_DATABASE_URL")
		if _, err := os.Stat(filepath.Join(data, "runproof.db")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: a database was made: %v", args, err)
		}
	}
}

// With --log-format json, a command's failure is a JSON log line too, with
// the exit status it would have had.
func TestFailureAsJSON(t *testing.T) {
	r := runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", t.TempDir(), "--log-format", "json", filepath.Join(t.TempDir(), "none.yaml"))
	var line struct{ Level, Msg string }
	if err := json.Unmarshal([]byte(r.stderr), &line); err != nil || r.code != 2 || line.Level != "ERROR" || !strings.Contains(line.Msg, "none.yaml: no such file") {
		t.Errorf("a failure with --log-format json: exit %d, stderr %q (%v)", r.code, r.stderr, err)
	}
	// A log level above errors still shows the failure, as a plain line.
	r = runCLI(t, "", "policy", "apply", "--tenant", "acme", "--data", t.TempDir(), "--log-format", "json", "--log-level", "error+1",
		filepath.Join(t.TempDir(), "none.yaml"))
	if r.code != 2 || !strings.HasPrefix(r.stderr, "runproof: ") || !strings.Contains(r.stderr, "none.yaml: no such file") {
		t.Errorf("a failure with --log-level error+1: exit %d, stderr %q", r.code, r.stderr)
	}
}
