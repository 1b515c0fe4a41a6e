package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
)

// settleTime is how long after it finished an export must be in the ledger
// for `ledger verify`: an export that has just finished may still be on its
// way in.
const settleTime = time.Minute

func ledgerVerifyCommand() *command {
	return &command{
		name:    "ledger verify",
		summary: "recompute the ledger of exports, audit events and steps and check its signatures",
		help: `Usage: runproof ledger verify [--tenant T] [--checkpoint FILE] [--key FILE]... [--all-signatures] [flags]

Recomputes each tenant's ledger from the export records, audit events and
steps: every entry, every stored hash of the tree and the tree hash of
every checkpoint; checks the signature of the latest checkpoint, which
covers every entry, that every export finished more than a minute ago is
in the ledger, that every audit event is in it or waiting for it, and that
each run's sealed steps follow one another and are all still there (serve
seals audit events and new steps every 30 seconds; it says how many runs
have steps waiting), and that the database still has every trigger that
guards runproof's records. Prints one line per tenant (a long check logs
how far it is every two seconds); exits 1 naming the first entry that
does not match, or the triggers gone, and 2 when a flag is wrong (a
--key, --checkpoint or --signing-key file that cannot be read or holds no
key, a checkpoint of another tenant than --tenant), before anything is
checked. Each tenant's check is recorded as an audit event of category
integrity (GET /api/v1/logs/audit/integrity); one interrupted (Ctrl-C) is
not, and the tenants after it are not begun (exit 1).

  --tenant T            only this tenant's ledger (default: every tenant that
                        has one, has exports, which must be in one, or has
                        audit events or steps waiting for it; with
                        --checkpoint, the tenant it names)
  --checkpoint FILE     a checkpoint kept from earlier (the text of GET
                        /api/v1/ledger/checkpoint): check its signature and
                        prove that the ledger still extends it
  --key FILE            a public key checkpoints may be signed with: a PEM
                        public key or a note verifier key; repeat for several
                        (default: the keys of DIR/signing-keys and --signing-key)
  --all-signatures      also check the signature of every older checkpoint:
                        one Ed25519 check per append, several times the rest
                        of the work. Without it, an older checkpoint whose
                        signature alone was altered (its note still stating
                        the recomputed tree) goes unnoticed; when the latest
                        signature does not hold, all are checked anyway
` + commonHelp + `
Examples:
  runproof ledger verify
  runproof ledger verify --tenant acme --checkpoint acme-2026-q3.checkpoint --key pub.pem
    (after a key rotation, give --key for each key that has signed: old.pem, new.pem)
  runproof ledger verify --all-signatures
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			checkpoint := fs.String("checkpoint", "", "older checkpoint file")
			allSignatures := fs.Bool("all-signatures", false, "check every checkpoint's signature")
			var keyFiles stringList
			fs.Var(&keyFiles, "key", "public key file")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("ledger verify: unexpected argument %q (see runproof ledger verify -h)", args[0])
				}
				if *tenant == "" && flagGiven(fs, "tenant") {
					return usagef("ledger verify: --tenant is empty: name a tenant, or leave the flag out to check every tenant")
				}
				// The files given are read first: a mistyped one is a wrong
				// flag, said before anything is opened or recorded.
				keys, err := keysOfFiles(keyFiles)
				if err != nil {
					return err
				}
				var older []byte
				if *checkpoint != "" {
					if older, err = os.ReadFile(*checkpoint); err != nil {
						return usagef("ledger verify: --checkpoint: %v", err)
					}
					// A signed note ends with one newline: an editor or a
					// copy may add more, or turn them into CRLF.
					older = append(bytes.TrimRight(bytes.ReplaceAll(older, []byte("\r\n"), []byte("\n")), " \t\r\n"), '\n')
					of := ledger.CheckpointTenant(older)
					switch {
					case of == "":
						return usagef("ledger verify: --checkpoint %s is not a runproof ledger checkpoint: give the signed note "+
							"that GET /api/v1/ledger/checkpoint serves, saved to a file", *checkpoint)
					case *tenant == "":
						*tenant = of
					case of != *tenant:
						return usagef("ledger verify: --checkpoint %s is tenant %q's, not %q's: give that tenant's checkpoint, or leave --tenant out",
							*checkpoint, of, *tenant)
					}
				}
				if *tenant != "" {
					if err := checkTenant("ledger verify", *tenant); err != nil {
						return err
					}
				}
				return verifyLedgers(ctx, e, *tenant, older, keys, *allSignatures)
			}
		},
	}
}

// stringList is a flag that may be repeated.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// verifiedTenants returns the tenants ledger verify checks when none is
// named: those with a ledger, and those with exports, which must be in one
// (a ledger taken out whole is no empty ledger).
func verifiedTenants(ctx context.Context, store runproof.Store) ([]string, error) {
	withLedger, err := store.LedgerTenants(ctx)
	if err != nil {
		return nil, err
	}
	withExports, err := store.ExportTenants(ctx)
	if err != nil {
		return nil, err
	}
	tenants := append(withLedger, withExports...)
	// And those with audit events or steps that wait for the ledger: a
	// tenant that has only ingested steps has no ledger yet, and is told so.
	for _, waiting := range []func(context.Context) ([]string, error){store.AuditTenantsToSeal, store.StepsTenantsToSeal} {
		ts, err := waiting(ctx)
		if err != nil {
			return nil, err
		}
		tenants = append(tenants, ts...)
	}
	slices.Sort(tenants)
	return slices.Compact(tenants), nil
}

// verifyLedgers checks the ledgers (see verifyLedgersOf) with the verifier
// keys given, or else with those of the data directory.
func verifyLedgers(ctx context.Context, e *env, tenant string, older []byte, keys []string, allSignatures bool) error {
	store, err := openRecorded(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	vkeys := keys
	if len(vkeys) == 0 {
		if vkeys, err = dataVerifierKeys(ctx, e.common, store); err != nil {
			return err
		}
	}
	// A trigger dropped changes no record by itself, but lets them be
	// changed: said after the tenants' lines, and a failure.
	guards, err := damagedTriggers(ctx, store)
	if err != nil {
		return err
	}
	first := verifyLedgersOf(ctx, e, store, tenant, older, vkeys, allSignatures)
	if guards != "" {
		fmt.Fprintf(e.stdout, "database: FAILED: %s\n", guards)
		first = cmp.Or(first, fmt.Errorf("ledger verify: %s", guards))
	}
	return first
}

// verifyLedgersOf checks the ledger of tenant, or of every tenant when it
// is "", printing a line for each, and returns the first failure.
func verifyLedgersOf(ctx context.Context, e *env, store database, tenant string, older []byte, vkeys []string, allSignatures bool) error {
	tenants := []string{tenant}
	if tenant == "" {
		var err error
		if tenants, err = verifiedTenants(ctx, store); err != nil {
			return err
		}
		if len(tenants) == 0 {
			fmt.Fprintln(e.stdout, "no export ledger to verify: nothing has been exported yet")
			return nil
		}
	}
	var first error
	for _, t := range tenants {
		if ctx.Err() != nil { // Ctrl-C after the last check: no further one is begun
			return cmp.Or(first, fmt.Errorf("ledger verify: interrupted before checking tenant %q", t))
		}
		started := time.Now()
		rep, err := ledger.Verify(ctx, store, ledger.VerifyParams{TenantID: t, VerifierKeys: vkeys, Checkpoint: older,
			FinishedBefore: started.Add(-settleTime), AllSignatures: allSignatures,
			Progress: progressLog(e, t)})
		var mismatch *ledger.Mismatch
		if errors.Is(err, context.Canceled) && !errors.As(err, &mismatch) {
			// Cut short: no outcome, so none is recorded, and the
			// tenants after it are not begun. (A fault found is an
			// outcome, even as Ctrl-C comes.)
			fmt.Fprintf(e.stdout, "%s: interrupted before the check was done: nothing recorded\n", t)
			return cmp.Or(first, fmt.Errorf("ledger verify: interrupted while checking tenant %q", t))
		}
		line := verifyLine(rep, err)
		if err != nil {
			if entries, lerr := store.LedgerEntries(ctx, t, 0, 1); lerr == nil && len(entries) == 0 {
				line += "; the tenant has no ledger at all: if its exports were made before runproof kept one, " +
					"serve (or the next export) appends them, then verify again"
			}
		}
		unknown := false                        // a tenant with no record at all: a mistyped --tenant, say
		if err == nil && rep.Checkpoints == 0 { // the check is done: said and recorded even after Ctrl-C
			actx, cancel := afterCancel(ctx)
			evs, aerr := store.ListAuditEvents(actx, runproof.ListAuditParams{TenantID: t, Limit: 1})
			cancel()
			if aerr != nil {
				return aerr
			}
			if unknown = len(evs) == 0; unknown {
				line += ": nothing has been exported or audited for this tenant (is --tenant right?)"
			} else {
				line += ": its audit events wait for it (serve, or the next export, puts them in)"
			}
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", t, line)
		decision := runproof.DecisionAllow
		if err != nil {
			decision = runproof.DecisionDeny
			if first == nil {
				first = &verifyFailure{tenant: t, line: line, err: err}
			}
		}
		if unknown {
			continue // no record, which would start a ledger for a mistyped --tenant
		}
		// A check done is recorded whatever its outcome, even after Ctrl-C.
		ev := cliEvent(t, runproof.AuditIntegrity, "ledger.verify", "ledger/"+t, decision, line)
		ev.OccurredAt = runproof.Timestamp(started) // when the check began
		aerr := record(ctx, service.New(store, service.Options{}), ev)
		if aerr != nil && first == nil {
			first = fmt.Errorf("ledger verify: the ledger of %s was checked but the audit event could not be recorded: %w", t, aerr)
		}
	}
	return first
}

// verifyFailure is a tenant's check that failed, said as its report line
// says it, with the failure beneath.
type verifyFailure struct {
	tenant, line string
	err          error
}

func (f *verifyFailure) Error() string {
	return fmt.Sprintf("ledger verify: the ledger of tenant %q: %s", f.tenant, f.line)
}

func (f *verifyFailure) Unwrap() error { return f.err }

// verifyProgressEvery is how often a long check logs how far it is.
const verifyProgressEvery = 2 * time.Second

// progressLog returns a Progress function that logs how far the check of
// a tenant's ledger is, at most every verifyProgressEvery.
func progressLog(e *env, tenant string) func(done, total int64) {
	last := time.Now()
	return func(done, total int64) {
		if time.Since(last) < verifyProgressEvery || done == total {
			return
		}
		last = time.Now()
		e.log.Info("ledger verify progress", slog.String("tenant_id", tenant), slog.Int64("entries", done), slog.Int64("of", total))
	}
}

// verifyLine is the outcome of one tenant's check, for a person to read.
func verifyLine(rep ledger.Report, err error) string {
	var m *ledger.Mismatch
	switch {
	case errors.As(err, &m) && m.Index >= 0 && keyHint(err) == "":
		return fmt.Sprintf("FAILED at entry %d: %s", m.Index, m.Reason)
	case errors.As(err, &m): // no entry to name, or a key, not an entry, at fault
		return "FAILED: " + m.Reason + keyHint(err)
	case err != nil:
		return "could not be checked: " + err.Error()
	}
	var line string
	switch {
	case rep.Checkpoints == 0:
		line = "ok: the ledger is empty"
	case rep.Signatures == rep.Checkpoints:
		with := " with their signatures"
		if rep.Checkpoints == 1 {
			with = " with its signature"
		}
		line = fmt.Sprintf("ok: %s recomputed, %s%s, the latest of size %d",
			entries(rep), counted(rep.Checkpoints, "checkpoint holds", "checkpoints hold"), with, rep.Latest.N)
	default:
		line = fmt.Sprintf("ok: %s recomputed, %s, the latest of size %d with its signature",
			entries(rep), counted(rep.Checkpoints, "checkpoint holds", "checkpoints hold"), rep.Latest.N)
	}
	if rep.Extends > 0 {
		line += fmt.Sprintf(", and it extends the given checkpoint of size %d", rep.Extends)
	}
	switch {
	case rep.Incidents == 1:
		line += "; 1 incident agrees with its inflection step"
	case rep.Incidents > 1:
		line += fmt.Sprintf("; %d incidents agree with their inflection steps", rep.Incidents)
	}
	switch {
	case rep.Unsealed == 1:
		line += "; 1 run has steps not sealed yet (a running serve seals them within half a minute; so does runproof export)"
	case rep.Unsealed > 1:
		line += fmt.Sprintf("; %d runs have steps not sealed yet (a running serve seals them within half a minute; so does runproof export)", rep.Unsealed)
	}
	return line
}

// entries counts a log's entries by what they seal, so that the parts add
// up: "51 entries (12 of exports, 3 of their ZIPs' manifests, 36 sealing
// 282 steps, 0 of audit events)".
func entries(rep ledger.Report) string {
	exports := rep.Entries - rep.Manifests - rep.AuditEvents - rep.StepRanges
	return fmt.Sprintf("%s (%d of exports, %d of their ZIPs' manifests, %d sealing %s, %d of audit events)",
		counted(rep.Entries, "entry", "entries"), exports, rep.Manifests, rep.StepRanges, counted(rep.Steps, "step", "steps"), rep.AuditEvents)
}

// counted says n of a thing, one or many.
func counted(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// keyHint says what to do when a checkpoint is signed by none of the
// keys it was checked with (err), and is "" otherwise.
func keyHint(err error) string {
	var signer *ledger.UnknownSignerError
	if !errors.As(err, &signer) {
		return ""
	}
	return " (if that key is the server's, give its public key with --key, or the --data or --signing-key " +
		"the server runs with; if not, the checkpoint was signed behind runproof's back)"
}

// keysOfFiles returns the note verifier keys of --key files; a file that
// cannot be read or holds no key is a wrong flag.
func keysOfFiles(files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		if f == "" {
			return nil, usagef("ledger verify: --key is empty: name a public key file (PEM, or a note verifier key)")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, usagef("ledger verify: --key: %v", err)
		}
		if bytes.Contains(b, []byte("-----BEGIN")) {
			pub, err := signing.ParsePublicPEM(b)
			if err != nil {
				return nil, usagef("ledger verify: --key %s: %v", f, err)
			}
			vk, err := ledger.VerifierKey(pub)
			if err != nil {
				return nil, usagef("ledger verify: --key %s: %v", f, err)
			}
			out = append(out, vk)
			continue
		}
		vk := strings.TrimSpace(string(b))
		if _, err := note.NewVerifier(vk); err != nil {
			return nil, usagef("ledger verify: --key %s holds neither a PEM public key nor a verifier key: %v", f, err)
		}
		out = append(out, vk)
	}
	return out, nil
}

// dataVerifierKeys returns the note verifier keys of the signing keys of
// the data directory and --signing-key (none when there are none and the
// store has no ledger).
func dataVerifierKeys(ctx context.Context, c common, store ledgerTenants) ([]string, error) {
	pubs, err := signing.PublicKeys(filepath.Join(c.data, "signing-keys"))
	if err != nil {
		return nil, err
	}
	if c.signingKey != "" {
		k, err := signing.ReadKeyFile(c.signingKey)
		if err != nil {
			return nil, usagef("--signing-key (or %s): %v", SigningKeyEnv, err)
		}
		pubs = append(pubs, signing.PublicKey{Public: k.Public()})
	}
	if len(pubs) == 0 {
		_, err := needKeys(ctx, c, store, "the ledger's public keys with --key")
		return nil, err
	}
	return ledgerVerifierKeys(pubs, "")
}

// newLedger returns the ledger that signs with the active key and accepts
// the checkpoints of every key that signed for the keyring: its other keys,
// keys given with --signing-key before, and keys another process adds to
// its directory later (`keys rotate-signing` while serve runs).
func newLedger(store runproof.Store, keys *signing.Keyring) (*ledger.Ledger, error) {
	active := keys.Active()
	others := func() ([]string, error) {
		pubs, err := keys.Verifying()
		if err != nil {
			return nil, err
		}
		return ledgerVerifierKeys(pubs, active.ID)
	}
	older, err := others()
	if err != nil {
		return nil, err
	}
	return ledger.New(store, active.Private, active.ID, ledger.Options{Verifiers: older, NewVerifiers: others})
}

// ledgerVerifierKeys returns the ledger verifier keys of public keys but
// the one with id except.
func ledgerVerifierKeys(pubs []signing.PublicKey, except string) ([]string, error) {
	var out []string
	for _, pub := range pubs {
		if signing.KeyID(pub.Public) == except {
			continue
		}
		vk, err := ledger.VerifierKey(pub.Public)
		if err != nil {
			return nil, err
		}
		out = append(out, vk)
	}
	return out, nil
}
