package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
)

func keysCreateCommand() *command {
	return &command{
		name:    "keys create",
		summary: "create an API key and print it",
		help: `Usage: runproof keys create --tenant T --role ROLE [--name N] [flags]

Creates an API key for a tenant and prints it alone on stdout. Only its hash
is stored: the key cannot be shown again.

  --tenant T            the tenant the key belongs to (required)
  --role ROLE           ` + runproof.RoleNames() + ` (required)
  --name N              a label for the key (default: the role)
` + commonHelp + `
Examples:
  runproof keys create --tenant acme --role agent --name checkout-bot
  KEY=$(runproof keys create --tenant acme --role admin)
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			role := fs.String("role", "", "role")
			name := fs.String("name", "", "label")
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
				return createKey(ctx, e, *tenant, runproof.Role(*role), *name)
			}
		},
	}
}

func createKey(ctx context.Context, e *env, tenant string, role runproof.Role, name string) error {
	store, err := openStore(ctx, e.common)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := service.New(store, service.Options{Logger: e.log})
	secret, key, err := svc.CreateAPIKey(ctx, tenant, role, name)
	if err != nil {
		return fmt.Errorf("cannot create the key: %s", fieldMessage(err))
	}
	if err := svc.Record(ctx, runproof.AuditEvent{TenantID: tenant, Actor: "system", ActorType: runproof.OriginSystem,
		Category: runproof.AuditIdentity, Action: "keys.create", Resource: "key/" + key.ID,
		Decision: runproof.DecisionAllow, SourceComponent: "cli",
		Detail: fmt.Sprintf("role %s, name %q", key.Role, key.Name)}); err != nil {
		// The key exists but its creation is not audited: say so rather than
		// hand out a key nobody can account for.
		return fmt.Errorf("key %s was created but its audit event could not be recorded: %w", key.ID, err)
	}
	fmt.Fprintf(e.stderr, "created key %s (tenant %s, role %s): store it now, it cannot be shown again\n", key.ID, tenant, key.Role)
	_, err = fmt.Fprintln(e.stdout, secret)
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
(PEM) on stderr. A running server picks the new key up when restarted.

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
					return usagef("keys rotate-signing: --signing-key (or %s) names a key kept outside the data directory: rotate it where it is kept", SigningKeyEnv)
				}
				keys, err := openKeys(e.common)
				if err != nil {
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
