package store

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/go-json-experiment/json"
)

// DeadLetter is a log entry the fold set aside because it cannot be
// folded (it does not decode, or is not an operation or receipt this
// version knows). The entry itself stays in its stream at Seq, where an
// operator with broker credentials reads it (nats stream get <stream>
// <seq>); the fold went on with the next one.
type DeadLetter struct {
	Stream  string `json:"stream"`
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

// maxReason bounds a dead letter's reason (a decoder's error may quote the
// entry).
const maxReason = 256

// PutDeadLetter records d in the batch: it commits with the applied
// sequence that passes it, so a dead letter is recorded exactly when the
// fold has gone past its entry.
func (b *Batch) PutDeadLetter(d DeadLetter) {
	d.Reason, d.Subject = printable(d.Reason), printable(d.Subject)
	raw, _ := json.Marshal(d)
	_ = b.set(deadLetterKey(d.Stream, d.Seq), raw)
	b.n++
}

// DeadLetters returns the last (highest sequence) limit dead letters of
// stream in sequence order, and how many the store holds for it.
func (s *Store) DeadLetters(stream string, limit int) ([]DeadLetter, int, error) {
	prefix := key("z", stream, "")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	var out []DeadLetter
	n := 0
	for ok := it.Last(); ok; ok = it.Prev() {
		n++
		if len(out) == limit {
			continue
		}
		var d DeadLetter
		if err := json.Unmarshal(it.Value(), &d); err != nil {
			return nil, 0, fmt.Errorf("%w: dead letter: %v", ErrCorrupt, err)
		}
		out = append(out, d)
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, n, nil
}

// PruneDeadLetters deletes the dead letters of stream below first (the
// stream's first retained sequence): their entries have left the log.
// It returns how many it deleted.
func (s *Store) PruneDeadLetters(stream string, first uint64) (int, error) {
	lower, upper := deadLetterKey(stream, 0), deadLetterKey(stream, first)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil || n == 0 {
		return 0, err
	}
	b := s.db.NewBatch()
	_ = b.DeleteRange(lower, upper, nil)
	return n, s.apply(b)
}

// printable cuts s to maxReason bytes of valid UTF-8 (a decoder's error
// may quote the entry's bytes, a subject may hold any).
func printable(s string) string {
	if len(s) > maxReason {
		s = s[:maxReason]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func deadLetterKey(stream string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key("z", stream, ""), seq)
}
