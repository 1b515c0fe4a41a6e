package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/verify"
)

func verifyCommand() *command {
	return &command{
		name:    "verify",
		summary: "check a signed ZIP bundle offline",
		help: `Usage: runproof verify FILE.zip [--key PUB.pem] [--without-proof]

Checks a ZIP bundle (runproof export --format zip) with nothing but the file
and the public key that should have signed it: no data directory, database
or network. It prints one line per check — the members, manifest.json, its
signature, SHA256SUMS, each file's size and sha256, bundle.json's canonical
form and content_hash, every step's content_hash, the totals against the
steps and the manifest, steps.csv against bundle.json, the ledger proof in
proof.json (required: every runproof ZIP carries it, but those made before
runproof kept an export ledger: see --without-proof), with what it shows to
read matching what it proves — stops at the first that fails and names the
file at fault.
Files of any size are streamed in flat memory.

  --key PUB.pem   the Ed25519 public key (PEM "PUBLIC KEY") the manifest must
                  be signed with; its key id must be the manifest's key_id.
                  Without it the signature is not checked: a warning line
                  says so, the last line says UNVERIFIED and the exit
                  status is 3, since anyone could have made a bundle that
                  passes the other checks.
  --without-proof for a ZIP made before runproof kept an export ledger: one
                  without proof.json passes, with a warning line (one with
                  it has it checked). Its ledger entry is proven by the
                  API's GET /api/v1/exports/{id}/proof, which
                  docs/examples/checkproof checks with the ZIP.

Exit status: 0 when every check holds, signature included — the last line
then says VERIFIED; 1 when a check fails or FILE or the key cannot be read;
2 on a usage error; 3 without --key when every other check holds — the last
line then says UNVERIFIED: the bundle is consistent, but nothing shows who
made it.

The public key of a signing key of the data directory:
  openssl pkey -in runproof-data/signing-keys/KEY.pem -pubout > pub.pem

The signature and the files checked with stock tools (SHA256SUMS alone is
not signed: it finds damage, not a forgery):
  zipinfo -1 evidence.zip | sort | uniq -d     # prints nothing: no name twice
  zipinfo -1 evidence.zip | LC_ALL=C sort | paste -sd' ' -   # the seven members, nothing added:
      # SHA256SUMS bundle.json manifest.json manifest.sig proof.json report.pdf steps.csv
  unzip evidence.zip -d bundle && cd bundle
  openssl pkeyutl -verify -pubin -inkey ../pub.pem -rawin -in manifest.json -sigfile manifest.sig
  jq -r '.files[] | "\(.sha256)  \(.name)"' manifest.json | sha256sum -c

Examples:
  runproof verify evidence.zip --key pub.pem
  runproof verify runproof-demo/soc2.zip     # no key: UNVERIFIED, exit status 3
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			keyFile := fs.String("key", "", "public key file")
			withoutProof := fs.Bool("without-proof", false, "let a ZIP made before runproof kept an export ledger, without proof.json, pass")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("verify: give one FILE.zip to check (see runproof verify -h)")
				}
				if *keyFile == "" && flagGiven(fs, "key") { // "--key $PUB" with PUB unset
					return usagef("verify: --key is empty: name the public key file (PEM), or leave --key out to check without it")
				}
				return runVerify(ctx, e, args[0], *keyFile, *withoutProof)
			}
		},
	}
}

// unverified is the exit status of a bundle checked without a key.
const unverified = 3

func runVerify(ctx context.Context, e *env, name, keyFile string, withoutProof bool) error {
	var key ed25519.PublicKey
	if keyFile != "" {
		var err error
		if key, err = readPublicKey(keyFile); err != nil {
			return err
		}
	}
	rep, err := checkZIP(ctx, name, key, withoutProof, e.stdout)
	if err != nil {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("verify: %s: interrupted before every check was done: not verified", name)
	case rep.Failure != nil:
		return fmt.Errorf("verify: %s does not verify: %v", name, rep.Failure)
	case rep.Authentic():
		m := rep.Manifest
		var but []string // what "complete and unchanged" does not cover
		if p := m.Population; p.StepsOmitted > 0 {
			but = append(but, fmt.Sprintf("its export left out %d of the run's %d steps (their totals are in)", p.StepsOmitted, p.Steps))
		}
		if len(rep.Warnings) > 0 {
			but = append(but, "not checked: "+strings.Join(rep.Warnings, "; "))
		}
		fmt.Fprintf(e.stdout, "VERIFIED: %s is complete and unchanged, signed by %s: %s %s, export %s of tenant %q\n",
			name, m.KeyID, m.BundleType, m.BundleID, m.ExportID, m.TenantID)
		if len(but) > 0 {
			fmt.Fprintf(e.stdout, "  but %s\n", strings.Join(but, "; and "))
		}
	default:
		fmt.Fprintf(e.stdout, "UNVERIFIED: %s is consistent, but its signature was not checked: give --key PUB.pem to know who signed it\n", name)
		return &statusError{status: unverified, msg: fmt.Sprintf("verify: %s is not verified: without --key its signature was not checked, "+
			"and anyone could have made a bundle that passes the other checks", name)}
	}
	return nil
}

// checkZIP verifies the ZIP file name, writing one line per check to out;
// the ledger proof is checked with the same key. It stops reading once
// ctx is done (Ctrl-C, on a large file).
func checkZIP(ctx context.Context, name string, key ed25519.PublicKey, withoutProof bool, out io.Writer) (*verify.Report, error) {
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) && name == "-" {
		return nil, usagef("verify: reads a ZIP file by name, not from standard input (a ZIP is read from its end): save it to a file first")
	} else if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("verify: %s: no such file", name)
	} else if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("verify: %s is a directory, not a ZIP file", name)
	}
	return verify.ZIP(interruptible{ctx, f}, info.Size(), verify.Options{Key: key, Out: untilDone{ctx, out}, WithoutProof: withoutProof,
		CheckProof: func(manifest, proof []byte) error {
			_, err := ledger.CheckManifestProof(manifest, proof, key)
			return err
		}}), nil
}

// untilDone writes to w until ctx is done: a check cut short reports no
// failure of the file.
type untilDone struct {
	ctx context.Context
	w   io.Writer
}

func (u untilDone) Write(p []byte) (int, error) {
	if u.ctx.Err() != nil {
		return len(p), nil
	}
	return u.w.Write(p)
}

// interruptible reads from r until ctx is done.
type interruptible struct {
	ctx context.Context
	r   io.ReaderAt
}

func (i interruptible) ReadAt(p []byte, off int64) (int, error) {
	if err := i.ctx.Err(); err != nil {
		return 0, err
	}
	return i.r.ReadAt(p, off)
}

// readPublicKey reads the Ed25519 public key of --key.
func readPublicKey(name string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("verify: --key %s: no such file", name)
	} else if err != nil {
		return nil, fmt.Errorf("verify: --key: %w", err)
	}
	if block, _ := pem.Decode(b); block != nil && block.Type == "PRIVATE KEY" {
		return nil, fmt.Errorf("verify: --key %s is a private key: give its public key (openssl pkey -in %s -pubout > pub.pem)", name, name)
	}
	key, err := signing.ParsePublicPEM(b)
	if err != nil {
		return nil, fmt.Errorf("verify: --key %s: %v", name, err)
	}
	return key, nil
}
