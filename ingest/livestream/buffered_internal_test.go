package livestream

import (
	"testing"
	"time"
)

// TestBufferedLeavesOutWhatNextSkips: a message whose ttl has passed, or
// an operation given already, is nothing at hand: the writer flushes what
// it wrote instead of holding it back for an operation Next will skip
// (until the next one, or the keep-alive 15 s later).
func TestBufferedLeavesOutWhatNextSkips(t *testing.T) {
	past := time.Now().Add(-time.Second).UnixMilli()
	future := time.Now().Add(time.Hour).UnixMilli()

	s := &Stream{last: 4, pending: []*Op{{Seq: 3}, {Seq: 5, TTL: past}}}
	if s.Buffered() {
		t.Fatal("a stream holding only an expired message and an operation given already says it has one at hand")
	}
	if s.last != 5 {
		t.Fatalf("last %d, want 5: the expired message is left out as Next leaves it", s.last)
	}

	live := &Stream{last: 5, state: live, sub: &sub{ch: make(chan *Op, 4)}}
	live.sub.ch <- &Op{Seq: 6, TTL: past}
	if live.Buffered() {
		t.Fatal("a live stream whose feed holds only an expired message says it has one at hand")
	}
	live.sub.ch <- &Op{Seq: 7, TTL: past}
	live.sub.ch <- &Op{Seq: 8, TTL: future}
	if !live.Buffered() {
		t.Fatal("a live stream with a message to give says it has none")
	}
	if len(live.pending) != 1 || live.pending[0].Seq != 8 || live.last != 7 {
		t.Fatalf("pending %v, last %d: want seq 8 at hand, 7 left out", live.pending, live.last)
	}
}
