package httpapi

import (
	"net/http"

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
	CreatedAt         string `json:"created_at"`
	Active            bool   `json:"active"`
}

type signingKeyList struct {
	Items []signingKey `json:"items"`
}

// signingKeys publishes the public keys that sign ZIP manifests and ledger
// checkpoints, the active one first; retired keys stay listed.
func (s *Server) signingKeys(w http.ResponseWriter, c *call) error {
	if s.keys == nil {
		return runproof.Errorf(runproof.ENOTFOUND, "this server has no signing keys")
	}
	keys := s.keys.Keys()
	active := s.keys.Active().ID
	out := signingKeyList{Items: make([]signingKey, 0, len(keys))}
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		vk, err := ledger.VerifierKey(k.Public())
		if err != nil {
			return err
		}
		out.Items = append(out.Items, signingKey{KeyID: k.ID, Algorithm: "Ed25519", PublicKey: string(signing.PublicPEM(k.Public())),
			LedgerVerifierKey: vk, CreatedAt: runproof.FormatTime(k.CreatedAt), Active: k.ID == active})
	}
	return writeJSON(w, http.StatusOK, out)
}
