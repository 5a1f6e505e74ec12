package pusher

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// retriedSummary is the summary of an operation whose partition handed
// each of its 64 devices to the retry queue (a provider answering 429 or
// 5xx): about 2.5 KB encoded, ten times what the batch bound once
// counted for it.
func retriedSummary(i int) delivery.Summary {
	s := delivery.Summary{ChannelID: ids.NewChannelID(), OpID: fmt.Sprintf("op-%d", i), Seq: uint64(i + 1),
		EntityType: ops.KindMessage, EntityID: ids.NewOpID(), AcceptedAt: 1_800_000_000_000, At: 1_800_000_000_500,
		Audience: 64, Retrying: 64}
	for range 64 {
		s.Retried = append(s.Retried, ids.NewDeviceKey())
	}
	return s
}

// TestSummariesOfRetriedAudiencesAreStored: a full queue of such summaries
// (the receipts stream slow for a moment during a provider's outage) is
// stored, every summary of it. Before, the batch bound counted 256 bytes a
// summary, so 512 of them went as one receipt of 1.3 MB, which the broker
// (1 MiB) refused at every attempt while every partition's floor waited:
// no device received anything until a restart. A batch the broker refuses
// for its size all the same is written in halves.
func TestSummariesOfRetriedAudiencesAreStored(t *testing.T) {
	b := brokertest.Start(t)
	_, js := b.Conn(t)
	p := &Pusher{js: js, log: slog.New(slog.DiscardHandler), metrics: newMetrics(), now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	w := newSummaries(p)
	stored := 0
	for i := range summaryBatchMax {
		w.add(retriedSummary(i), func() { stored++ })
	}
	for w.flush(ctx) {
	}
	if stored != summaryBatchMax {
		t.Fatalf("%d of %d summaries stored (%v)", stored, summaryBatchMax, ctx.Err())
	}

	// The same count in one batch, past the bound's estimate: halved.
	batch := make([]pendingSummary, summaryBatchMax)
	for i := range batch {
		batch[i] = pendingSummary{s: retriedSummary(summaryBatchMax + i)}
	}
	if err := w.store(ctx, batch); err != nil {
		t.Fatalf("one oversized batch: %v", err)
	}
	s, err := js.Stream(ctx, streams.Receipts)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			if err == jetstream.ErrMsgNotFound {
				break
			}
			t.Fatal(err)
		}
		var r delivery.Receipt
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		n += len(r.Summaries)
	}
	if n != 2*summaryBatchMax {
		t.Fatalf("the stream holds %d summaries, want %d", n, 2*summaryBatchMax)
	}
}

// TestSummarySizeBoundsTheEncoding: the batch bound's estimate of a
// summary is never below its encoded size, whatever its failures' reasons
// hold (escapes included) and however many devices it retried.
func TestSummarySizeBoundsTheEncoding(t *testing.T) {
	failing := delivery.Summary{ChannelID: ids.NewChannelID(), OpID: "op", EntityType: ops.KindEvent, EntityID: ids.NewOpID()}
	for i := range 40 {
		failing.Failures = append(failing.Failures, delivery.Failure{DeviceKey: ids.NewDeviceKey(), Provider: "apns",
			Outcome: "failed", Reason: fmt.Sprintf("400 BadDeviceToken \"quoted\" \x01 <%d> ünïcode", i)})
	}
	for name, s := range map[string]delivery.Summary{"retried": retriedSummary(0), "failing": failing, "empty": {}} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if est := summarySize(s); est < len(b) {
			t.Errorf("%s: estimated %d bytes, encoded %d", name, est, len(b))
		}
	}
}
