package registry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters of new password hashes.
// Existing hashes keep the parameters they were made with (they are in the
// PHC string), so raising the cost later needs no migration.
type Argon2Params struct {
	Time    uint32 // iterations
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultArgon2 is OWASP's minimum recommendation for argon2id
// (m=19 MiB, t=2, p=1): about 20-40 ms per hash on one core here.
var DefaultArgon2 = Argon2Params{Time: 2, Memory: 19 * 1024, Threads: 1}

const saltLen, keyLen = 16, 32

var b64 = base64.RawStdEncoding

// hashPassword returns the PHC string of password under p.
func hashPassword(password string, p Argon2Params) string {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errBadHash = errors.New("registry: malformed password hash")

// verifyPassword reports whether password matches the PHC string phc, in
// constant time with respect to the key.
func verifyPassword(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errBadHash
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, errBadHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// checkCache remembers successful password checks so that the hot path of
// a high-volume sender does not pay argon2id on every request. An entry is
// keyed by the channel's registry revision: a rename or a password change
// makes a new revision, so the next request verifies again, on every
// replica. It stores an HMAC of the password under a per-process random
// key, never the password.
type checkCache struct {
	key [32]byte
	// macs holds HMAC states under key, reset after each use: every
	// authorized request computes one, and a new state is two SHA-256
	// states and the padded key (half a kilobyte of garbage a request).
	macs *sync.Pool
}

func newCheckCache() checkCache {
	c := checkCache{macs: new(sync.Pool)}
	_, _ = rand.Read(c.key[:])
	key := c.key
	c.macs.New = func() any { return hmac.New(sha256.New, key[:]) }
	return c
}

func (c *checkCache) mac(channelID, password string) [32]byte {
	h := c.macs.Get().(hash.Hash)
	h.Write([]byte(channelID))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var out [32]byte
	h.Sum(out[:0])
	h.Reset()
	c.macs.Put(h)
	return out
}
