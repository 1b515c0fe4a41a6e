// Package signing keeps the Ed25519 keys that sign export manifests and
// ledger checkpoints. Keys live as PKCS#8 PEM files (0600) in one
// directory; the newest is the active key and older ones stay listed so
// that what they signed can still be verified after a rotation.
package signing

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/atomicfile"
)

// Key is one signing key.
type Key struct {
	ID        string // "ed25519:" and the first 16 hex digits of the SHA-256 of the public key (SPKI DER)
	Private   ed25519.PrivateKey
	CreatedAt time.Time
}

// Public returns the key's public half.
func (k Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// Sign returns the raw 64-byte Ed25519 signature of msg.
func (k Key) Sign(msg []byte) []byte { return ed25519.Sign(k.Private, msg) }

// MAC returns the HMAC-SHA256 of msg under a key derived from this key's
// private seed for one purpose (HKDF-SHA256 with the purpose as its info),
// for tokens that only the server checks, such as signed download URLs:
// no other secret to keep, and a key per purpose, unrelated to the
// signatures.
func (k Key) MAC(purpose string, msg []byte) []byte {
	mk, err := hkdf.Key(sha256.New, k.Private.Seed(), nil, purpose, sha256.Size)
	if err != nil { // only for keys longer than HKDF-SHA256 gives
		panic(err)
	}
	m := hmac.New(sha256.New, mk)
	m.Write(msg)
	return m.Sum(nil)
}

// Keyring is every key of a directory, oldest first, plus possibly a key
// given from outside (a file), which is then the active one.
type Keyring struct {
	dir  string
	keys []Key
}

// nameTime is the layout of the time in key file names: they sort in
// creation order.
const nameTime = "20060102T150405.000000000Z"

// Open loads the keys of dir, creating dir (0700) and a first key when
// there is none.
func Open(dir string) (*Keyring, error) {
	kr, err := load(dir)
	if err != nil {
		return nil, err
	}
	if len(kr.keys) == 0 {
		return firstKey(dir)
	}
	return kr, nil
}

// firstKeyLock is the file of dir that processes opening a directory
// without keys lock in turn (see firstKey). It stays: removing a file
// others may be waiting on would let two of them hold a lock each.
const firstKeyLock = ".first-key.lock"

// firstKey makes the first key of dir once: processes that open a new data
// directory at once (serve and demo, say) take turns holding a lock on a
// file of it, and those after the first load its key, rather than each
// sign with a key of its own. The system drops the lock of a process that
// stops.
func firstKey(dir string) (*Keyring, error) {
	f, err := os.OpenFile(filepath.Join(dir, firstKeyLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	defer f.Close() // and the lock with it
	if err := lockFile(f); err != nil {
		return nil, fmt.Errorf("signing keys: lock %s: %w", f.Name(), err)
	}
	kr, err := load(dir) // one that held the lock before may have made it
	if err == nil && len(kr.keys) == 0 {
		_, err = kr.Rotate()
	}
	if err != nil {
		return nil, err
	}
	return kr, nil
}

// OpenWith loads the keys of dir, creating dir (0700) but no key, and
// makes k, loaded from elsewhere, the active one (Use).
func OpenWith(dir string, k Key) (*Keyring, error) {
	kr, err := load(dir)
	if err == nil {
		err = kr.Use(k)
	}
	if err != nil {
		return nil, err
	}
	return kr, nil
}

// load reads the keys of dir, creating dir (0700) if need be.
func load(dir string) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	keys, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	return &Keyring{dir: dir, keys: keys}, nil
}

// HasKeys reports whether dir holds a key (Open makes a first one in a
// directory that does not). A directory that cannot be read is an error,
// not one without keys: the keys may be there, out of the user's reach.
func HasKeys(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("signing keys: %w (is runproof run as the user that owns the data directory?)", err)
	}
	for _, e := range entries {
		if ok, _ := filepath.Match(keyPattern, e.Name()); ok { // the pattern is valid
			return true, nil
		}
	}
	return false, nil
}

// keyPattern is the pattern of the names of key files. Hidden files, such as
// the temporary files of a write a crash cut short, are not keys.
const keyPattern = "[^.]*.pem"

// keyFiles is the pattern of the key files of dir.
func keyFiles(dir string) string { return filepath.Join(dir, keyPattern) }

// readDir reads the keys of a directory, oldest first.
func readDir(dir string) ([]Key, error) {
	names, err := filepath.Glob(keyFiles(dir))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var keys []Key
	for _, name := range names {
		k, err := ReadKeyFile(name)
		if err != nil {
			return nil, err
		}
		if t, err := time.Parse(nameTime, strings.SplitN(filepath.Base(name), "-", 2)[0]); err == nil {
			k.CreatedAt = t
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// usedDir, under the keyring's directory, keeps the public half of every
// key given with Use.
const usedDir = "used"

// A PublicKey is the public half of a signing key, with when the key was
// made when known.
type PublicKey struct {
	Public    ed25519.PublicKey
	CreatedAt time.Time // zero for a key known only from its public half
}

// Verifying returns the public keys of every key that signed for this
// keyring: the keys now in its directory, to which another
// process (`runproof keys rotate-signing`) may have added one, and every
// key given with Use, now or by an earlier process. The keyring itself is
// unchanged.
func (kr *Keyring) Verifying() ([]PublicKey, error) { return verifying(kr.dir, kr.keys) }

// PublicKeys returns the public keys of every key that signed for the
// keyring of dir: the keys in it and those given with Use, now or by an
// earlier process. It makes nothing: none when dir holds no key.
func PublicKeys(dir string) ([]PublicKey, error) { return verifying(dir, nil) }

// verifying returns the public keys of the keys of dir, of those given
// with Use, and of own.
func verifying(dir string, own []Key) ([]PublicKey, error) {
	keys, err := readDir(dir)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, usedDir, "[^.]*.pub.pem"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []PublicKey
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		pub, err := ParsePublicPEM(b)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %s: %w", name, err)
		}
		out = append(out, PublicKey{Public: pub})
	}
	for _, k := range append(keys, own...) {
		if !slices.ContainsFunc(out, func(p PublicKey) bool { return p.Public.Equal(k.Public()) }) {
			out = append(out, PublicKey{Public: k.Public(), CreatedAt: k.CreatedAt})
		}
	}
	return out, nil
}

// usesFile, in the keyring's directory, lists when a server began signing
// with which key: a line "<RFC 3339 time> <key id>" per start.
const usesFile = "uses"

// KeyUse is a server's start: from At, it signed with KeyID.
type KeyUse struct {
	At    time.Time
	KeyID string
}

// BeginUse records that a server begins signing with the active key at
// at: the key signs from then until a server starts with another (Uses).
func (kr *Keyring) BeginUse(at time.Time) error {
	f, err := os.OpenFile(filepath.Join(kr.dir, usesFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s %s\n", at.UTC().Format(time.RFC3339Nano), kr.Active().ID)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	return nil
}

// Served reports whether a server has begun signing (BeginUse) with the
// keyring in dir.
func Served(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, usesFile))
	return err == nil && fi.Size() > 0
}

// Uses returns the starts BeginUse recorded, oldest first. A line it cannot
// read (one a crash cut short) is skipped.
func (kr *Keyring) Uses() ([]KeyUse, error) {
	b, err := os.ReadFile(filepath.Join(kr.dir, usesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	var out []KeyUse
	for line := range strings.Lines(string(b)) {
		at, id, ok := strings.Cut(strings.TrimSpace(line), " ")
		t, err := time.Parse(time.RFC3339Nano, at)
		if ok && err == nil && id != "" {
			out = append(out, KeyUse{At: t, KeyID: id})
		}
	}
	slices.SortStableFunc(out, func(a, b KeyUse) int { return a.At.Compare(b.At) })
	return out, nil
}

// Rotate creates a new key in the directory and makes it the active one.
func (kr *Keyring) Rotate() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	k := Key{ID: KeyID(priv.Public().(ed25519.PublicKey)), Private: priv, CreatedAt: time.Now().UTC()}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, err
	}
	name := filepath.Join(kr.dir, k.CreatedAt.Format(nameTime)+"-"+strings.TrimPrefix(k.ID, "ed25519:")+".pem")
	// Written whole (0600): a process stopped half-way leaves no half key
	// behind a name the keyring reads.
	err = atomicfile.Write(name, 0o600, func(w io.Writer) error {
		return pem.Encode(w, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	})
	if err != nil {
		return Key{}, fmt.Errorf("signing keys: %w", err)
	}
	kr.keys = append(kr.keys, k)
	return k, nil
}

// Use makes k, loaded from elsewhere, the active key. It is listed with the
// others; of it, only its public half is written to the directory (under
// used/), so that what it signed still verifies once another key is given
// (Verifying).
func (kr *Keyring) Use(k Key) error {
	name := filepath.Join(kr.dir, usedDir, strings.TrimPrefix(k.ID, "ed25519:")+".pub.pem")
	if _, err := os.Stat(name); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			return fmt.Errorf("signing keys: %w", err)
		}
		pem := PublicPEM(k.Public())
		if err := atomicfile.Write(name, 0o644, func(w io.Writer) error { _, err := w.Write(pem); return err }); err != nil {
			return fmt.Errorf("signing keys: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	kr.keys = slices.DeleteFunc(kr.keys, func(o Key) bool { return o.ID == k.ID })
	kr.keys = append(kr.keys, k)
	return nil
}

// Active returns the key that signs.
func (kr *Keyring) Active() Key { return kr.keys[len(kr.keys)-1] }

// Keys returns every key, oldest first; the last is the active one.
func (kr *Keyring) Keys() []Key { return slices.Clone(kr.keys) }

// WithNewer returns the keyring's keys, oldest first, followed by those
// another process has added to its directory since it was loaded (`keys
// rotate-signing`), which servers sharing the directory sign with once
// restarted. The keyring itself is unchanged.
func (kr *Keyring) WithNewer() ([]Key, error) {
	inDir, err := readDir(kr.dir)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	out := slices.Clone(kr.keys)
	for _, k := range inDir {
		if !slices.ContainsFunc(out, func(o Key) bool { return o.ID == k.ID }) {
			out = append(out, k)
		}
	}
	return out, nil
}

// ReadKeyFile reads an Ed25519 private key from a PKCS#8 PEM file, such as
// `openssl genpkey -algorithm ed25519` writes.
func ReadKeyFile(name string) (Key, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return Key{}, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return Key{}, fmt.Errorf("signing key %s: not a PEM \"PRIVATE KEY\" (PKCS#8) file", name)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("signing key %s: %w", name, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return Key{}, fmt.Errorf("signing key %s: a %T, not an Ed25519 key", name, parsed)
	}
	info, err := os.Stat(name)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: KeyID(priv.Public().(ed25519.PublicKey)), Private: priv, CreatedAt: info.ModTime().UTC()}, nil
}

// KeyID names a public key: "ed25519:" and the first 16 hex digits of the
// SHA-256 of its SPKI DER encoding (what PublicPEM holds).
func KeyID(pub ed25519.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for a valid Ed25519 key
	sum := sha256.Sum256(der)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// PublicPEM encodes a public key as a PEM "PUBLIC KEY" (SPKI), the form
// `openssl pkeyutl -verify -pubin` reads.
func PublicPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicPEM reads a PEM "PUBLIC KEY" holding an Ed25519 key, alone:
// of a file of several keys, which one is meant cannot be told.
func ParsePublicPEM(b []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(b)
	switch {
	case block != nil && block.Type == "PRIVATE KEY":
		return nil, errors.New("a private key, not a public one: give its public half (openssl pkey -in KEY.pem -pubout)")
	case block == nil || block.Type != "PUBLIC KEY":
		return nil, errors.New("not a PEM \"PUBLIC KEY\" file")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("holds more than one PEM block: give one key a file")
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := parsed.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 public key", parsed)
	}
	return pub, nil
}
