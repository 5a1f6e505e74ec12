package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/streams"
)

// storeFloorGroup is the operations the store floor commits at once: the
// projector's default group (projector.Config.BatchSize).
const storeFloorGroup = 10_000

// storeFloor is the fold's floor (-store-floor): it reads the whole log
// with the raw consume's ordered consumer and writes each operation once
// into a fresh projection store (the projector's own options), as its
// channel's history item of the log entry's bytes, committing groups of
// storeFloorGroup with the applied sequence while the next group fills;
// timed until the group holding last is committed. No decoding, snapshot,
// op_id record or index: the least any fold of this log into this store
// does, so the fold row's ratio can be read beside what the broker's
// delivery and Pebble alone reach on this machine.
func storeFloor(ctx context.Context, o *projPhase, b *broker.Embedded, last uint64) (timed, error) {
	dir, err := os.MkdirTemp("", "pushgo-bench-floor-*")
	if err != nil {
		return timed{}, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "projection"), store.Options{})
	if err != nil {
		return timed{}, err
	}
	defer st.Close()
	nc, js, err := connectJS(b)
	if err != nil {
		return timed{}, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, o.foldLimit())
	defer cancel()

	// The committer owns the commits; the consume callback fills a batch
	// and hands it over full, so consuming and committing overlap as in
	// the fold.
	type group struct {
		b       *store.Batch
		applied uint64
	}
	groups := make(chan group, 1)
	committed := make(chan error, 1)
	committerDone := make(chan struct{})
	// Whatever the outcome, no commit runs once groups is closed and the
	// committer has returned: only then may the store close.
	defer func() { <-committerDone }()
	go func() {
		defer close(committerDone)
		for g := range groups {
			if err := g.b.Commit(g.applied); err != nil {
				committed <- err
				for range groups { // let the callback finish
				}
				return
			}
			if g.applied >= last {
				committed <- nil
			}
		}
	}()

	cpu0 := sampleCPU()
	began := time.Now()
	cons, err := js.OrderedConsumer(ctx, streams.Ops, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		close(groups)
		return timed{}, err
	}
	var bad int64 // the callback runs on one goroutine
	cur := st.NewBatch()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		channelID, kind, _, ok := streams.ParseOpSubject(m.Subject())
		if err != nil || !ok {
			bad++
			return
		}
		seq := md.Sequence.Stream
		cur.PutHistory(channelID, kind, seq, m.Data())
		if cur.Len() >= storeFloorGroup || seq >= last {
			select {
			case groups <- group{b: cur, applied: seq}:
			case <-ctx.Done():
				return
			}
			cur = st.NewBatch()
		}
	}, jetstream.PullMaxMessages(consumePull))
	if err != nil {
		close(groups)
		return timed{}, err
	}
	select {
	case err = <-committed:
	case <-ctx.Done():
		err = fmt.Errorf("last operation not committed: %w", ctx.Err())
	}
	res := timed{took: time.Since(began), cpu: cpuBetween(cpu0, sampleCPU())}
	cc.Stop()
	<-cc.Closed()
	close(groups)
	switch {
	case err != nil:
		return timed{}, err
	case bad > 0:
		return timed{}, fmt.Errorf("%d operations without metadata or with a foreign subject", bad)
	}
	return res, nil
}
