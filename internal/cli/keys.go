package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
)

func keysCreateCommand() *command {
	return &command{
		name:    "keys create",
		summary: "create an API key and print it",
		help: `Usage: runproof keys create --tenant T --role ROLE [--name N] [--agent A] [flags]

Creates an API key for a tenant and prints it alone on stdout. Only its hash
is stored: the key cannot be shown again.

  --tenant T            the tenant the key belongs to (required)
  --role ROLE           ` + runproof.RoleNames() + ` (required)
  --name N              a label for the key (default: the role)
  --agent A             with --role agent: bind the key to the agent A, the
                        agent_id of its runs. It then opens that agent's
                        runs only (OTLP spans are A's, a sub-agent named on
                        a span included, but for spans whose resource names
                        another agent, refused), and writes, ends and polls
                        no other; without it, an agent key acts for every
                        agent of the tenant
` + commonHelp + `
Examples:
  runproof keys create --tenant acme --role agent --agent checkout-bot
  KEY=$(runproof keys create --tenant acme --role admin)
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			role := fs.String("role", "", "role")
			name := fs.String("name", "", "label")
			agent := fs.String("agent", "", "the agent an agent key is bound to")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("keys create: unexpected argument %q (see runproof keys create -h)", args[0])
				}
				if err := checkTenant("keys create", *tenant); err != nil {
					return err
				}
				if !runproof.Role(*role).Valid() {
					return usagef("keys create: --role must be one of %s", runproof.RoleNames())
				}
				if *agent == "" && flagGiven(fs, "agent") { // "--agent $A" with A unset
					return usagef("keys create: --agent is empty: name the agent, or leave --agent out for a key of every agent")
				}
				if *agent != "" && runproof.Role(*role) != runproof.RoleAgent {
					return usagef("keys create: --agent binds an agent key to its agent: give it with --role agent, or leave it out")
				}
				return createKey(ctx, e, *tenant, service.KeyInput{Role: runproof.Role(*role), Name: *name, AgentID: *agent})
			}
		},
	}
}

func createKey(ctx context.Context, e *env, tenant string, in service.KeyInput) error {
	store, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := service.New(store, service.Options{})
	secret, key, err := svc.CreateAPIKey(ctx, tenant, in)
	if runproof.ErrorCode(err) == runproof.EINVALID {
		return usagef("keys create: --%s", fieldMessage(err))
	} else if err != nil {
		return fmt.Errorf("cannot create the key: %w", err)
	}
	if err := record(ctx, svc, keyEvent(tenant, "keys.create", key)); err != nil {
		// The key exists but its creation is not audited: say so rather than
		// hand out a key nobody can account for.
		return fmt.Errorf("key %s was created but its audit event could not be recorded: %w", key.ID, err)
	}
	bound := ""
	if key.AgentID != "" {
		bound = fmt.Sprintf(", for agent %q alone", key.AgentID)
	}
	// Where it is kept, so that a mistyped --data shows here rather than
	// as a key the server does not know.
	fmt.Fprintf(e.stderr, "created key %s (tenant %s, role %s%s) in %s: store it now, it cannot be shown again\n",
		key.ID, tenant, key.Role, bound, e.where())
	_, err = fmt.Fprintln(e.stdout, secret)
	return err
}

// keyEvent is the audit event of a change to an API key.
func keyEvent(tenant, action string, key runproof.APIKey) runproof.AuditEvent {
	detail := fmt.Sprintf("role %s, name %q", key.Role, key.Name)
	if key.AgentID != "" {
		detail += fmt.Sprintf(", agent %q", key.AgentID)
	}
	return cliEvent(tenant, runproof.AuditIdentity, action, "key/"+key.ID, runproof.DecisionAllow, detail)
}

func keysListCommand() *command {
	return &command{
		name:    "keys list",
		summary: "list a tenant's API keys",
		help: `Usage: runproof keys list --tenant T [flags]

Prints the tenant's API keys, oldest first, one per line: id, role, the
agent an agent key is bound to, name, when it was created and, for a
revoked key, when it was revoked. Secrets
are never stored, so never shown.

  --tenant T            the tenant (required)
` + commonHelp + `
Examples:
  runproof keys list --tenant acme
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("keys list: unexpected argument %q (see runproof keys list -h)", args[0])
				}
				if err := checkTenant("keys list", *tenant); err != nil {
					return err
				}
				store, err := openRecorded(ctx, e)
				if err != nil {
					return err
				}
				defer store.Close()
				keys, err := service.New(store, service.Options{}).ListAPIKeys(ctx, *tenant)
				if err != nil {
					return err
				}
				if len(keys) == 0 {
					fmt.Fprintf(e.stderr, "tenant %s has no API key (create one with runproof keys create)\n", *tenant)
					return nil
				}
				w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tROLE\tAGENT\tNAME\tCREATED\tREVOKED")
				for _, k := range keys {
					revoked := "-"
					if k.RevokedAt != nil {
						revoked = runproof.FormatTime(*k.RevokedAt)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, cell(cmp.Or(k.AgentID, "-")), cell(k.Name), runproof.FormatTime(k.CreatedAt), revoked)
				}
				return w.Flush()
			}
		},
	}
}

func keysRevokeCommand() *command {
	return &command{
		name:    "keys revoke",
		summary: "revoke an API key",
		help: `Usage: runproof keys revoke --tenant T (KEY_ID | SECRET | -) [flags]

Revokes one of the tenant's API keys, named by its id (as keys list and
keys create print it) or by its secret (a leaked key, known only by what
leaked; "-" reads it from stdin, out of sight of ps): from then on every
request with it is refused (401). The key
stays listed, with the time it was revoked, and the revocation is recorded
as an audit event of category identity. It cannot be undone: create a new
key instead.

  --tenant T            the tenant the key belongs to (required)
` + commonHelp + `
Examples:
  runproof keys revoke --tenant acme key_3a3fbd0a1ae5106c
  printf %s "$LEAKED_SECRET" | runproof keys revoke --tenant acme -
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 || args[0] == "" {
					return usagef("keys revoke: give the id of the one key to revoke (runproof keys list --tenant T shows them)")
				}
				if err := checkTenant("keys revoke", *tenant); err != nil {
					return err
				}
				key := args[0]
				if key == "-" { // a secret, kept off the command line
					b, err := readInput(ctx, "-", e.stdin) // stops at Ctrl-C, as policy apply's does
					if err != nil {
						return fmt.Errorf("keys revoke: cannot read the key from stdin: %w", err)
					}
					if key = strings.TrimSpace(string(b)); key == "" {
						return usagef("keys revoke: stdin is empty: give the key's secret on it, or its id as the argument")
					}
				}
				return revokeKey(ctx, e, *tenant, key)
			}
		},
	}
}

func revokeKey(ctx context.Context, e *env, tenant, keyID string) error {
	store, err := openRecorded(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := service.New(store, service.Options{})
	if strings.HasPrefix(keyID, service.KeyPrefix) { // the secret itself, as a leaked key is known
		k, err := svc.KeyBySecret(ctx, tenant, keyID)
		if err != nil {
			return fmt.Errorf("cannot revoke the key: %w (this is a key's secret; keys list --tenant %s shows the ids)", err, tenant)
		}
		keyID = k.ID
	}
	key, err := svc.RevokeAPIKey(ctx, tenant, keyID)
	if err != nil {
		return fmt.Errorf("cannot revoke the key: %w", err)
	}
	if err := record(ctx, svc, keyEvent(tenant, "keys.revoke", key)); err != nil {
		return fmt.Errorf("key %s was revoked but its audit event could not be recorded: %w", key.ID, err)
	}
	_, err = fmt.Fprintf(e.stdout, "revoked key %s (tenant %s, role %s, name %q)\n", key.ID, tenant, key.Role, key.Name)
	return err
}

func keysRotateSigningCommand() *command {
	return &command{
		name:    "keys rotate-signing",
		summary: "make a new signing key the active one",
		help: `Usage: runproof keys rotate-signing [flags]

Creates a new Ed25519 signing key in DIR/signing-keys and makes it the one
that signs ZIP manifests and ledger checkpoints from now on. Older keys stay
listed (GET /api/v1/signing-keys) and accepted, so that everything they
signed still verifies. Prints the new key's id on stdout and its public key
(PEM) on stderr. A running server publishes the new key and accepts the
ledger checkpoints it signs (by other commands), and the download URLs
servers restarted onto it give out, at once, and signs with it once
restarted: restart servers sharing keys together (docs/integrity.md).
Keys that did not sign the latest checkpoint of every tenant's ledger in
the database are refused: they are another deployment's (check --data
and --database).

` + commonHelp + `
Examples:
  runproof keys rotate-signing
  runproof keys rotate-signing --data /var/lib/runproof 2>new-pub.pem
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("keys rotate-signing: unexpected argument %q (see runproof keys rotate-signing -h)", args[0])
				}
				if e.signingKey != "" {
					return usagef("keys rotate-signing: --signing-key (or %s) names a key kept outside the data directory: make a new key where it is kept and give that file instead", SigningKeyEnv)
				}
				dir := filepath.Join(e.data, "signing-keys")
				if has, err := signing.HasKeys(dir); err != nil {
					return fmt.Errorf("keys rotate-signing: %w", err)
				} else if !has {
					return fmt.Errorf("keys rotate-signing: no signing key in %s to rotate: give --data the data directory runproof serve uses", dir)
				}
				keys, err := openKeys(e)
				if err != nil {
					return err
				}
				if err := keysSignLedgers(ctx, e, keys); err != nil {
					return err
				}
				k, err := keys.Rotate()
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "%s", signing.PublicPEM(k.Public()))
				_, err = fmt.Fprintln(e.stdout, k.ID)
				return err
			}
		},
	}
}

// keysSignLedgers refuses keys that did not sign the latest checkpoint of
// every tenant's ledger in the database: they are another deployment's,
// most likely, the one a default --data names while --database names
// this one, and rotating them would leave this one's servers on their old
// key and move the other's at its next restart.
func keysSignLedgers(ctx context.Context, e *env, keys *signing.Keyring) error {
	if _, err := os.Stat(e.sqlitePath()); e.engine() == engineSQLite && errors.Is(err, fs.ErrNotExist) {
		return e.checkServedBefore() // no database yet, no ledger: unless its server used PostgreSQL
	}
	store, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	pubs, err := keys.Verifying()
	if err != nil {
		return err
	}
	known, err := ledgerVerifierKeys(pubs, "")
	if err != nil {
		return err
	}
	tenants, err := store.LedgerTenants(ctx)
	if err != nil {
		return err
	}
	for _, tenant := range tenants {
		c, err := store.LedgerCheckpoint(ctx, tenant, 0)
		if err != nil {
			return fmt.Errorf("keys rotate-signing: the latest checkpoint of tenant %s: %w", tenant, err)
		}
		if !slices.Contains(known, c.VerifierKey) {
			return fmt.Errorf("keys rotate-signing: the keys in %s did not sign the ledger of tenant %s in this database: "+
				"give --data the data directory of the servers that use it (and --database its URL)", filepath.Join(e.data, "signing-keys"), tenant)
		}
	}
	return nil
}

// warnKeyless warns, once a command has written for a tenant, that the
// tenant has no API key: a tenant begins with its first key, so a --tenant
// mistyped writes where no one reads.
func warnKeyless(ctx context.Context, e *env, svc *service.Service, tenant string) {
	if keys, err := svc.ListAPIKeys(ctx, tenant); err == nil && len(keys) == 0 {
		e.log.Warn("the tenant has no API key: is --tenant right? (a tenant begins with its first key: runproof keys create)",
			slog.String("tenant", tenant))
	}
}
