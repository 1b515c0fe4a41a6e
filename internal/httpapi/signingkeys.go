package httpapi

import (
	"crypto/ed25519"
	"net/http"
	"time"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

// signingKey is one published public key.
type signingKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key_pem"` // SPKI PEM, for openssl and runproof verify --key
	// LedgerVerifierKey is the same key as a note verifier key, which
	// checks ledger checkpoints (golang.org/x/mod/sumdb/note).
	LedgerVerifierKey string `json:"ledger_verifier_key"`
	CreatedAt         string `json:"created_at,omitempty"` // absent for a key given from outside the keyring (--signing-key), known by its public half
	Active            bool   `json:"active"`
}

type signingKeyList struct {
	Items []signingKey `json:"items"`
}

// signingKeys publishes the public keys that sign ZIP manifests and ledger
// checkpoints: this server's, the active one first, retired keys staying
// listed; then the other keys that signed for its keyring, which another
// process may have made since it started (`keys rotate-signing`), or
// given with --signing-key before.
func (s *Server) signingKeys(w http.ResponseWriter, c *call) error {
	if s.keys == nil {
		return runproof.Errorf(runproof.ENOTFOUND, "this server has no signing keys")
	}
	keys := s.keys.Keys()
	active := s.keys.Active().ID
	out := signingKeyList{Items: make([]signingKey, 0, len(keys))}
	listed := map[string]bool{}
	add := func(pub ed25519.PublicKey, created time.Time) error {
		vk, err := ledger.VerifierKey(pub)
		if err != nil {
			return err
		}
		k := signingKey{KeyID: signing.KeyID(pub), Algorithm: "Ed25519", PublicKey: string(signing.PublicPEM(pub)), LedgerVerifierKey: vk}
		if !created.IsZero() {
			k.CreatedAt = runproof.FormatTime(created)
		}
		k.Active, listed[k.KeyID] = k.KeyID == active, true
		out.Items = append(out.Items, k)
		return nil
	}
	for i := len(keys) - 1; i >= 0; i-- {
		if err := add(keys[i].Public(), keys[i].CreatedAt); err != nil {
			return err
		}
	}
	others, err := s.keys.Verifying()
	if err != nil {
		return err
	}
	for _, pub := range others {
		if !listed[signing.KeyID(pub.Public)] {
			if err := add(pub.Public, pub.CreatedAt); err != nil {
				return err
			}
		}
	}
	return writeJSON(w, http.StatusOK, out)
}
