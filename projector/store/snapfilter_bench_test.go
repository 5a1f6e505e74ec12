package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/pushgo/gateway/projector/fold"
)

// BenchmarkNewEntityLookup is the fold's lookup of an entity the store
// never held (each create's), in a store of 200,000 events written in
// commits of 1,000, with the snapshot filter and without it.
func BenchmarkNewEntityLookup(b *testing.B) {
	for _, c := range []struct {
		name string
		keys int
	}{{"filter", 0}, {"pebble", -1}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{SnapshotFilterKeys: c.keys})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const n, per = 200_000, 1000
			for i := 0; i < n; i += per {
				batch := s.NewBatch()
				for j := i; j < i+per; j++ {
					_ = batch.PutEvent(nil, &fold.Event{ChannelID: ch, EventID: fmt.Sprintf("%032x", j), State: "ONGOING", Title: "a title of some length", Message: "a message of some more length than the title"})
				}
				if err := batch.Commit(uint64(i + per)); err != nil {
					b.Fatal(err)
				}
			}
			// Measured with the filter built and the store's flushes
			// and compactions done, as between make bench's rows.
			for (c.keys >= 0 && (s.snapFilter.Load() == nil || s.snapFilter.Load().sized < n)) || !s.Background().Idle() {
				time.Sleep(10 * time.Millisecond)
			}
			ids := make([]string, 4096)
			for i := range ids {
				ids[i] = fmt.Sprintf("%032x", n+i)
			}
			batch := s.NewBatch()
			b.ResetTimer()
			for i := range b.N {
				if ev, err := batch.Event(ch, ids[i%len(ids)]); ev != nil || err != nil {
					b.Fatal(ev, err)
				}
			}
		})
	}
}
