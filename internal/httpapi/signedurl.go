package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

// A signed download URL downloads one export without an API key until it
// expires: something to hand to a browser, a ticket or a script. It is
// made out to the key that asked for the export record, which the download
// is recorded against, and revoking that key ends its URLs too. Its query
// names the tenant, the key and the expiry, and carries an HMAC of them and
// of the export id under a key derived from the active signing key (any
// key that signed within a URL's lifetime is accepted, so neither a
// rotation nor a restart onto a new key ends the URLs given out just
// before it). Servers that share a database must share their signing keys
// for one's URLs to work on another; when they restart onto a new key at
// different times, the old key's URLs end a URL's lifetime after the
// first restart (retiredAt: the starts are all the servers record).

// downloadURLLifetime is how long a signed download URL works.
const downloadURLLifetime = 15 * time.Minute

// clockSkew is how far ahead of this server's clock another server that
// gave out a URL may be.
const clockSkew = time.Minute

// downloadPurpose separates the MAC key of download URLs from any other.
const downloadPurpose = "runproof signed download URL v1"

// downloadMessage is what a download URL's signature covers. No id holds a
// newline (runproof.CheckText), so the lines cannot be shifted.
func downloadMessage(tenantID, keyID, exportID string, expires int64) []byte {
	return fmt.Appendf(nil, "%s\n%s\n%s\n%d", tenantID, keyID, exportID, expires)
}

// downloadPath is the download path of an export, for API keys.
func downloadPath(exportID string) string {
	return "/api/v1/exports/" + url.PathEscape(exportID) + "/download"
}

// downloadURL returns the download path of an export, signed for the
// caller's key when the server has signing keys.
func (s *Server) downloadURL(c *call, exportID string) string {
	u := downloadPath(exportID)
	if s.keys == nil {
		return u
	}
	expires := s.svc.Now().Add(downloadURLLifetime).Unix()
	mac := s.keys.Active().MAC(downloadPurpose, downloadMessage(c.key.TenantID, c.key.ID, exportID, expires))
	q := url.Values{"tenant": {c.key.TenantID}, "key": {c.key.ID}, "expires": {strconv.FormatInt(expires, 10)},
		"signature": {base64.RawURLEncoding.EncodeToString(mac)}}
	return u + "?" + q.Encode()
}

// signedURL reports whether a request comes with a signed URL instead of
// an API key.
func signedURL(r *http.Request) bool {
	return r.Header.Get("Authorization") == "" && r.URL.Query().Has("signature")
}

// signedURLKey returns the key a signed download URL was made out to, or
// EUNAUTHORIZED saying what is wrong with the URL.
func (s *Server) signedURLKey(r *http.Request) (runproof.APIKey, error) {
	q := r.URL.Query()
	refuse := func(why string) (runproof.APIKey, error) {
		return runproof.APIKey{}, runproof.Errorf(runproof.EUNAUTHORIZED,
			"the download URL %s: take a fresh one from the export record (GET /api/v1/exports/{id}), or send an API key", why)
	}
	expires, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return refuse("has no valid expires")
	}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get("signature"))
	if err != nil || s.keys == nil {
		return refuse("is not signed by this server")
	}
	msg := downloadMessage(q.Get("tenant"), q.Get("key"), r.PathValue("export_id"), expires)
	now := s.svc.Now()
	at := time.Unix(expires, 0)
	expired, tooLate := now.After(at), at.After(now.Add(downloadURLLifetime+clockSkew))
	signed := signedWith(s.keys.Keys(), s.keyUses, sig, msg, now)
	if !signed && len(sig) == sha256.Size && !expired && !tooLate {
		// Another server sharing the keys may sign with one made since this
		// one started (`keys rotate-signing`, then its restart).
		keys, uses, err := s.shared.read(s.keys, s.keyUses)
		signed = err == nil && signedWith(keys, uses, sig, msg, now)
	}
	switch {
	case !signed:
		return refuse("is not signed by this server, or was changed")
	case expired:
		return refuse("expired at " + runproof.FormatTime(at))
	case tooLate:
		return refuse("expires later than any this server gives out")
	}
	key, err := s.svc.KeyByID(r.Context(), q.Get("tenant"), q.Get("key"))
	if runproof.ErrorCode(err) == runproof.EUNAUTHORIZED {
		_, err := refuse("was made out to a key that no longer holds (" + runproof.ErrorMessage(err) + ")")
		return key, err // the key, when revoked: its tenant records the refusal
	}
	return key, err
}

// sharedKeys are the signing keys and the servers' starts with them as
// the keys' directory, shared by the servers of a database, last held
// them: read again at most every sharedKeysFor, so that a URL signed with
// a key made since this server started costs a read of the directory now
// and then, not on every download, nor on every forged URL.
type sharedKeys struct {
	mu   sync.Mutex
	at   time.Time
	keys []signing.Key
	uses []signing.KeyUse
}

// sharedKeysFor is how long sharedKeys keeps what it read.
const sharedKeysFor = 10 * time.Second

// read returns the keys of kr, with those added to its directory since it
// was loaded, and the starts it recorded with own's.
func (sk *sharedKeys) read(kr *signing.Keyring, own []signing.KeyUse) ([]signing.Key, []signing.KeyUse, error) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.keys != nil && time.Since(sk.at) < sharedKeysFor {
		return sk.keys, sk.uses, nil
	}
	keys, err := kr.WithNewer()
	if err != nil {
		return nil, nil, err
	}
	uses, err := kr.Uses()
	if err != nil {
		return nil, nil, err
	}
	uses = append(uses, own...)
	slices.SortStableFunc(uses, func(a, b signing.KeyUse) int { return a.At.Compare(b.At) })
	sk.keys, sk.uses, sk.at = keys, uses, time.Now()
	return keys, uses, nil
}

// signedWith reports whether sig is a download URL's signature of msg by
// one of keys (oldest first) that may still have signed a URL that works:
// the newest, or one retired (retiredAt, by the servers' starts uses) less
// than a URL's lifetime ago.
func signedWith(keys []signing.Key, uses []signing.KeyUse, sig, msg []byte, now time.Time) bool {
	signed := false
	for i, k := range keys {
		if i+1 < len(keys) && retiredAt(keys, uses, i).Before(now.Add(-downloadURLLifetime-clockSkew)) {
			continue // it signed no URL that still works
		}
		signed = signed || hmac.Equal(sig, k.MAC(downloadPurpose, msg))
	}
	return signed
}

// retiredAt is when keys[i] stopped signing download URLs: when, after the
// key following it was made and after a server last started with it, a
// server first started with another key. A server signs with the key it
// started with until it stops, even when a newer one is made meanwhile
// (`keys rotate-signing` while it runs).
func retiredAt(keys []signing.Key, uses []signing.KeyUse, i int) time.Time {
	from := keys[i+1].CreatedAt
	for _, u := range uses {
		if u.KeyID == keys[i].ID && u.At.After(from) {
			from = u.At
		}
	}
	for _, u := range uses {
		if u.KeyID != keys[i].ID && !u.At.Before(from) {
			return u.At
		}
	}
	return from // no server started with another key since
}
