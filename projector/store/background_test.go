package store

import (
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestBackground: what the store reports of its background work follows
// what it holds: nothing flushed yet, then a table in level 0 after a
// flush, the room on disk, and nothing once closed (a scrape racing the
// close reads no freed state).
func TestBackground(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if bg := s.Background(); bg.L0Sublevels != 0 || !bg.Idle() {
		t.Fatalf("fresh store: %+v", bg)
	}
	b := s.NewBatch()
	for i := range 100 {
		th := &fold.Thing{ChannelID: ch, ThingID: string(rune('a'+i%26)) + string(rune('a'+i/26)), State: ops.ThingActive}
		if err := b.PutThing(nil, th); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(100); err != nil {
		t.Fatal(err)
	}
	before := s.Background().DiskBytes
	if err := s.db.Flush(); err != nil { // waits for the flush to end
		t.Fatal(err)
	}
	bg := s.Background()
	if bg.L0Sublevels != 1 || bg.DiskBytes <= before || bg.Flushing {
		t.Fatalf("after a flush: %+v (disk before %d)", bg, before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if bg := s.Background(); bg != (Background{}) {
		t.Fatalf("closed store: %+v", bg)
	}
}
