// Package ids holds the identifier formats of the contract: channel ids
// (Crockford base32 of 128 random bits), entity ids and op ids, and the
// deterministic derivation of create ids from an op_id.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"strings"
	"time"
)

// crockford is the Crockford base32 alphabet (no I, L, O, U).
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ChannelIDLen is the length of a channel id: ceil(128/5).
const ChannelIDLen = 26

// NewChannelID returns a fresh channel id of 128 random bits.
func NewChannelID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return encodeCrockford(b)
}

func encodeCrockford(b [16]byte) string {
	// 128 bits as 26 symbols: the first symbol carries the top 3 bits.
	var out [ChannelIDLen]byte
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	for i := ChannelIDLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | (hi&31)<<59
		hi >>= 5
	}
	return string(out[:])
}

// NormalizeChannelID returns the canonical (upper-case) form of a channel id,
// decoding case-insensitively with O→0 and I/L→1 as Crockford specifies,
// and skipping hyphens and ASCII white space, as PushGo's decoder does
// (src/util/encoding.rs, decode_crockford_base32_128: the apps show and
// accept ids in groups, and a sender may paste one so). ok is false for
// anything that is not 26 symbols encoding 128 bits: the two bits beyond
// 128 either first (this gateway's ids) or last (PushGo's), both zero.
func NormalizeChannelID(s string) (id string, ok bool) {
	if len(s) != ChannelIDLen {
		if s, ok = withoutSeparators(s); !ok {
			return "", false
		}
	}
	var out [ChannelIDLen]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		switch c {
		case 'O':
			c = '0'
		case 'I', 'L':
			c = '1'
		}
		if strings.IndexByte(crockford, c) < 0 {
			return "", false
		}
		out[i] = c
	}
	if !within128Bits(out[0], out[ChannelIDLen-1]) {
		return "", false
	}
	return string(out[:]), true
}

// within128Bits reports whether the 130 bits of 26 symbols, first and last
// of them canonical, hold a 128-bit value: this gateway's ids keep the two
// spare bits zero at the top (NewChannelID), PushGo's at the bottom (its
// encode_crockford_base32_128).
func within128Bits(first, last byte) bool {
	return first <= '7' || strings.IndexByte(crockford, last)&3 == 0
}

// withoutSeparators returns s without hyphens and ASCII white space when
// that leaves ChannelIDLen bytes.
func withoutSeparators(s string) (string, bool) {
	if len(s) < ChannelIDLen || len(s) > 4*ChannelIDLen {
		return "", false
	}
	b := make([]byte, 0, ChannelIDLen)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '-', ' ', '\t', '\n', '\v', '\f', '\r':
		default:
			if len(b) == ChannelIDLen {
				return "", false
			}
			b = append(b, c)
		}
	}
	return string(b), len(b) == ChannelIDLen
}

// CanonicalChannelID reports whether s is a channel id in its canonical
// form: NormalizeChannelID(s) == s, ok, without making a string. The
// projector checks every operation of the log with it.
func CanonicalChannelID(s string) bool {
	if len(s) != ChannelIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if byteClass[s[i]]&classCrockford == 0 {
			return false
		}
	}
	return within128Bits(s[0], s[ChannelIDLen-1])
}

// byteClass marks the bytes of the id alphabets.
var byteClass = func() (t [256]uint8) {
	for c := range 256 {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':' || c == '-' {
			t[c] |= classToken
		}
	}
	for i := 0; i < len(crockford); i++ {
		t[crockford[i]] |= classCrockford
	}
	return t
}()

const (
	classToken     = 1 << iota // [A-Za-z0-9_:-]
	classCrockford             // the canonical Crockford symbols
)

// validToken reports whether s is 1..max characters of [A-Za-z0-9_:-] plus
// any of extra.
func validToken(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if byteClass[c]&classToken == 0 && (extra == "" || strings.IndexByte(extra, c) < 0) {
			return false
		}
	}
	return true
}

// ValidEntityID reports whether s is a valid event, thing or message id:
// 1-64 characters of [A-Za-z0-9_:-]. Such ids are safe as NATS subject tokens.
func ValidEntityID(s string) bool { return validToken(s, 64, "") }

// ValidOpID reports whether s is a valid op_id: 1-128 characters of [A-Za-z0-9_:-].
func ValidOpID(s string) bool { return validToken(s, 128, "") }

// NewOpID returns a generated op_id: 32 lowercase hex characters, the
// first 12 the milliseconds since the Unix epoch, the next 16 random (64
// bits), the last 4 a check of the others (IsGenerated). Generated op_ids
// are keys of the projection's op_id index, which holds one entry per
// operation: drawn at random, each flushed table of that index overlapped
// every older one and compactions rewrote the whole index again and again
// (10-20% of a million-operation fold's CPU); in time order, new entries
// land after the old ones. Retried creates are unaffected: an entity id is
// still a hash of its op_id.
func NewOpID() string {
	var random [8]byte
	_, _ = rand.Read(random[:])
	return formatOpID(time.Now().UnixMilli(), random)
}

// formatOpID is NewOpID's op_id of the time ms and the random bits.
func formatOpID(ms int64, random [8]byte) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(ms)<<16)
	copy(b[6:14], random[:])
	binary.BigEndian.PutUint16(b[14:], opIDCheck(b[:14]))
	return hex.EncodeToString(b[:])
}

// NewSenderOpID returns an op_id for a sender: NewOpID's length and time
// order, with 80 random bits and no check. The CLI's writes carry one (so
// that a retry is safe), and so does an event the event bus route names
// for its sender: ingest must not take them for op_ids it generated and
// answered, which it looks up (IsGenerated).
func NewSenderOpID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// IsGenerated reports whether opID has the form NewOpID gives: 32
// lowercase hex characters whose last 4 check the others. A sender that
// sends back an op_id the gateway generated for it has one; a sender's own
// op_id has it by chance once in 65,536. It is a shape, not a proof:
// ingest uses it only to decide where to look for an earlier use of the
// op_id (a message with a generated op_id is not on a subject of its own).
func IsGenerated(opID string) bool {
	// hex.Decode takes upper case too; NewOpID writes only lower case.
	if len(opID) != 32 || strings.ContainsAny(opID, "ABCDEF") {
		return false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(opID)); err != nil {
		return false
	}
	return binary.BigEndian.Uint16(b[14:]) == opIDCheck(b[:14])
}

// opIDCheck is the check of a generated op_id's first 14 bytes: the low 16
// bits of their CRC-32C.
func opIDCheck(b []byte) uint16 { return uint16(crc32.Checksum(b, castagnoli)) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewRandomID returns 32 lowercase hex characters of 128 random bits.
func NewRandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewDeviceKey returns a generated device key: 32 lowercase hex characters
// of 128 random bits (no time in it: a device key is handed out and names
// a device for its whole life).
func NewDeviceKey() string { return NewRandomID() }

// DeriveEntityID returns the id of the entity created by (channel, route,
// opID): 32 lowercase hex characters. Deriving it, rather than drawing it at
// random, is what makes a retried create land on the same entity however
// late the retry comes.
func DeriveEntityID(channelID, route, opID string) string {
	h := sha256.New()
	h.Write([]byte(channelID))
	h.Write([]byte{0})
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write([]byte(opID))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
