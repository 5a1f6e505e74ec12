package livestream_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/livestream"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestAStreamNotReadHoldsLittle: a client that opens a stream from the
// start of a channel's history and stops reading leaves its stream holding
// one history batch; the batch is small, so the process's cap of streams
// bounds their memory (a batch of 256 items or 256 KiB held 325 KiB a
// stream of 1 KB operations, 3 GiB at the default cap of 10,000).
func TestAStreamNotReadHoldsLittle(t *testing.T) {
	b := brokertest.Start(t)
	f := follower(t, b.JS, livestream.Options{})
	ch := chanID(1)
	body := strings.Repeat("x", 1000)
	for i := range 300 {
		m := nats.NewMsg(streams.OpSubject(ch, ops.KindMessage, fmt.Sprintf("op%d", i)))
		m.Header.Set(streams.HeaderOp, string(ops.MessageCreate))
		m.Data = fmt.Appendf(nil, `{"v":1,"op":"message","channel_id":%q,"op_id":"op%d","payload":{"body":%q}}`, ch, i, body)
		if _, err := b.JS.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// A first stream warms what every stream shares (the broker's cache
	// of the log's blocks, the reply subscription).
	warm := open(t, f, ch, 0)
	next(t, warm)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 100
	var held []*livestream.Stream
	for range n {
		s := open(t, f, ch, 0)
		next(t, s) // given one, the rest of its batch held
		held = append(held, s)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	each := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d streams not read hold %d KiB of heap each", n, each>>10)
	if each > 96<<10 {
		t.Errorf("a stream not read holds %d KiB, want under 96", each>>10)
	}
	for _, s := range append(held, warm) {
		s.Close()
	}
}
