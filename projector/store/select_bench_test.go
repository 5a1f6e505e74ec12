package store

import (
	"fmt"
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/entityselector"
	"github.com/pushgo/gateway/schemas/ops"
)

// BenchmarkSelectThings is a Dynatrace report's selection: one HOST of
// 100,000 by entityName or by entityId, the store flushed to tables and a
// memtable holding recent writes (as in a gateway under load).
func BenchmarkSelectThings(b *testing.B) {
	const hosts = 100_000
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	put := func(from, to int, seq uint64) {
		bt := s.NewBatch()
		for h := from; h < to; h++ {
			th := &fold.Thing{ChannelID: ch, ThingID: fmt.Sprintf("host-%06d", h), Title: fmt.Sprintf("host-%06d", h),
				State: ops.ThingActive, Attrs: fold.Attrs{{Name: "type", Value: []byte(`"HOST"`)}}}
			if err := bt.PutThing(nil, th); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Commit(seq); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 9 {
		put(i*hosts/10, (i+1)*hosts/10, uint64(i+1))
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	put(9*hosts/10, hosts, 10)
	for _, by := range []string{"entityName", "entityId"} {
		b.Run(by, func(b *testing.B) {
			sels := make([]*entityselector.Selector, 1000)
			for i := range sels {
				text := fmt.Sprintf(`type(HOST),entityName.equals("host-%06d")`, i*97%hosts)
				if by == "entityId" {
					text = fmt.Sprintf(`entityId("host-%06d")`, i*97%hosts)
				}
				sel, perr := entityselector.Parse(text)
				if perr != nil {
					b.Fatal(perr)
				}
				sels[i] = sel
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				res, err := s.SelectThings(ch, sels[i%len(sels)], 100)
				if err != nil || len(res.ThingIDs) != 1 {
					b.Fatalf("%v %v", res, err)
				}
			}
		})
	}
}
