package fold

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/go-json-experiment/json/jsontext"
)

// The stored form of a snapshot: a compact binary encoding, cheaper to
// write and to read back than JSON and about half its size. It is
// canonical: a snapshot has exactly one encoding, so equal snapshots are
// equal bytes (what a rebuild is compared by), and DecodeEvent /
// DecodeThing accept only what EncodeEvent / EncodeThing write.
//
//	event: 'E' 1 <flags> <11 strings> <varints> <tags> <images> <attrs> <metadata>
//	thing: 'T' 1 <flags> <10 strings> <varints> <tags> <images> <attrs> <metadata> <external ids>
//
// A string is its length (uvarint) and bytes; a list its count and
// strings; attrs a count and (name, value) pairs in name order; metadata a
// length and its JSON; external ids a count and (key, value) pairs in key
// order. Signed times are zig-zag varints, counters uvarints. flags says
// which optional times follow.
const codecVersion = 1

const (
	tagEvent = 'E'
	tagThing = 'T'
)

// Flags of the optional members.
const (
	flagEndedAt    = 1 << 0 // event
	flagDeadline   = 1 << 1 // event
	flagArchivedAt = 1 << 0 // thing
	flagDeletedAt  = 1 << 1 // thing
)

// EncodeEvent appends the stored form of e to dst.
func EncodeEvent(dst []byte, e *Event) []byte {
	var flags byte
	if e.EndedAt != nil {
		flags |= flagEndedAt
	}
	if e.Deadline != nil {
		flags |= flagDeadline
	}
	dst = append(dst, tagEvent, codecVersion, flags)
	for _, s := range [...]string{e.ChannelID, e.EventID, e.ThingID, e.Title, e.Description, e.Status, e.Message,
		e.Severity, e.State, e.Ciphertext, e.LastOpID} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendVarint(dst, e.EventTime)
	dst = binary.AppendVarint(dst, e.StartedAt)
	if e.EndedAt != nil {
		dst = binary.AppendVarint(dst, *e.EndedAt)
	}
	if e.Deadline != nil {
		dst = binary.AppendVarint(dst, *e.Deadline)
	}
	dst = binary.AppendVarint(dst, e.CreatedAt)
	dst = binary.AppendVarint(dst, e.UpdatedAt)
	dst = binary.AppendUvarint(dst, e.Version)
	dst = binary.AppendUvarint(dst, e.LastSeq)
	dst = appendList(dst, e.Tags)
	dst = appendList(dst, e.Images)
	dst = appendAttrs(dst, e.Attrs)
	return appendString(dst, string(e.Metadata))
}

// EncodeThing appends the stored form of t to dst.
func EncodeThing(dst []byte, t *Thing) []byte {
	var flags byte
	if t.ArchivedAt != nil {
		flags |= flagArchivedAt
	}
	if t.DeletedAt != nil {
		flags |= flagDeletedAt
	}
	dst = append(dst, tagThing, codecVersion, flags)
	for _, s := range [...]string{t.ChannelID, t.ThingID, t.Title, t.Description, t.State, t.PrimaryImage,
		t.LocationType, t.LocationValue, t.Ciphertext, t.LastOpID} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendVarint(dst, t.CreatedAt)
	dst = binary.AppendVarint(dst, t.ObservedAt)
	if t.ArchivedAt != nil {
		dst = binary.AppendVarint(dst, *t.ArchivedAt)
	}
	if t.DeletedAt != nil {
		dst = binary.AppendVarint(dst, *t.DeletedAt)
	}
	dst = binary.AppendVarint(dst, t.UpdatedAt)
	dst = binary.AppendUvarint(dst, t.Version)
	dst = binary.AppendUvarint(dst, t.LastSeq)
	dst = appendList(dst, t.Tags)
	dst = appendList(dst, t.Images)
	dst = appendAttrs(dst, t.Attrs)
	dst = appendString(dst, string(t.Metadata))
	keys := make([]string, 0, len(t.ExternalIDs))
	for k := range t.ExternalIDs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, t.ExternalIDs[k])
	}
	return dst
}

// Encode returns the stored form of a snapshot (*Event or *Thing).
func Encode(snapshot any) []byte {
	switch s := snapshot.(type) {
	case *Event:
		return EncodeEvent(nil, s)
	case *Thing:
		return EncodeThing(nil, s)
	}
	panic("fold.Encode: not a snapshot")
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendList(dst []byte, l []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(l)))
	for _, s := range l {
		dst = appendString(dst, s)
	}
	return dst
}

func appendAttrs(dst []byte, a Attrs) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(a)))
	for _, m := range a {
		dst = appendString(dst, m.Name)
		dst = appendString(dst, string(m.Value))
	}
	return dst
}

// errNotCanonical marks stored bytes that EncodeEvent / EncodeThing did not
// write.
var errNotCanonical = errors.New("not a snapshot this version writes")

// DecodeEvent reads a snapshot written by EncodeEvent.
func DecodeEvent(b []byte) (*Event, error) {
	r := reader{b: b}
	flags := r.header(tagEvent, flagEndedAt|flagDeadline)
	e := &Event{}
	for _, s := range [...]*string{&e.ChannelID, &e.EventID, &e.ThingID, &e.Title, &e.Description, &e.Status, &e.Message,
		&e.Severity, &e.State, &e.Ciphertext, &e.LastOpID} {
		*s = r.string()
	}
	e.EventTime = r.varint()
	e.StartedAt = r.varint()
	if flags&flagEndedAt != 0 {
		v := r.varint()
		e.EndedAt = &v
	}
	if flags&flagDeadline != 0 {
		v := r.varint()
		e.Deadline = &v
	}
	e.CreatedAt = r.varint()
	e.UpdatedAt = r.varint()
	e.Version = r.uvarint()
	e.LastSeq = r.uvarint()
	e.Tags = r.list()
	e.Images = r.list()
	e.Attrs = r.attrs()
	e.Metadata = r.value()
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("event snapshot: %w", err)
	}
	return e, nil
}

// DecodeThing reads a snapshot written by EncodeThing.
func DecodeThing(b []byte) (*Thing, error) {
	r := reader{b: b}
	flags := r.header(tagThing, flagArchivedAt|flagDeletedAt)
	t := &Thing{}
	for _, s := range [...]*string{&t.ChannelID, &t.ThingID, &t.Title, &t.Description, &t.State, &t.PrimaryImage,
		&t.LocationType, &t.LocationValue, &t.Ciphertext, &t.LastOpID} {
		*s = r.string()
	}
	t.CreatedAt = r.varint()
	t.ObservedAt = r.varint()
	if flags&flagArchivedAt != 0 {
		v := r.varint()
		t.ArchivedAt = &v
	}
	if flags&flagDeletedAt != 0 {
		v := r.varint()
		t.DeletedAt = &v
	}
	t.UpdatedAt = r.varint()
	t.Version = r.uvarint()
	t.LastSeq = r.uvarint()
	t.Tags = r.list()
	t.Images = r.list()
	t.Attrs = r.attrs()
	t.Metadata = r.value()
	if n := r.count(); n > 0 {
		t.ExternalIDs = make(map[string]string, n)
		prev := ""
		for i := range n {
			k, v := r.string(), r.string()
			if i > 0 && k <= prev {
				r.fail("external ids out of order")
			}
			t.ExternalIDs[k], prev = v, k
		}
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("thing snapshot: %w", err)
	}
	return t, nil
}

// StateOf returns the state of a stored snapshot without decoding the
// rest (a listing filtered by state).
func StateOf(b []byte) (string, error) {
	r := reader{b: b}
	if len(b) == 0 {
		return "", errNotCanonical
	}
	switch b[0] {
	case tagEvent:
		r.header(tagEvent, flagEndedAt|flagDeadline)
		for range 8 { // channel_id … severity
			r.skipString()
		}
	case tagThing:
		r.header(tagThing, flagArchivedAt|flagDeletedAt)
		for range 4 { // channel_id … description
			r.skipString()
		}
	default:
		return "", errNotCanonical
	}
	s := r.string()
	return s, r.err
}

// reader decodes the stored form; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errNotCanonical, why)
	}
	r.b = nil
}

func (r *reader) header(tag byte, known byte) byte {
	if len(r.b) < 3 || r.b[0] != tag || r.b[1] != codecVersion || r.b[2]&^known != 0 {
		r.fail("header")
		return 0
	}
	flags := r.b[2]
	r.b = r.b[3:]
	return flags
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.Varint
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// count reads a count of items of at least one byte each.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("count")
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.count()
	if r.err != nil {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) skipString() { r.bytes() }

func (r *reader) list() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = r.string()
	}
	return l
}

func (r *reader) value() jsontext.Value {
	v := r.bytes()
	if len(v) == 0 {
		return nil
	}
	return jsontext.Value(bytes.Clone(v))
}

func (r *reader) attrs() Attrs {
	n := r.count()
	if n == 0 {
		return nil
	}
	a := make(Attrs, n)
	for i := range a {
		a[i] = Attr{Name: r.string(), Value: r.value()}
		if r.err == nil && (len(a[i].Value) == 0 || i > 0 && a[i].Name <= a[i-1].Name) {
			r.fail("attrs")
		}
	}
	return a
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}
