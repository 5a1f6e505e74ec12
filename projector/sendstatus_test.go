package projector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestSummaryReceipts: the receipts fold reads delivery summaries from
// their own subject (they span channels) along with per-channel outcome
// receipts, and /send_status adds them up.
func TestSummaryReceipts(t *testing.T) {
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true})
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	payload, _ := json.Marshal(ops.MessagePayload{MessageID: "m1", Title: "hello", Severity: "normal", OccurredAt: 1713750000000})
	env, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "op1", EntityID: "m1", AcceptedAt: 1713750000007, Payload: payload})
	ack, err := js.Publish(context.Background(), streams.OpSubject(ch, ops.KindMessage, "m1"), env)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, p, ack.Sequence)
	if st := sendStatus(t, p, "op1"); st.Status != delivery.StatusAccepted {
		t.Fatalf("before any receipt: %+v", st)
	}

	seq := ack.Sequence
	part := func(n, sent, failed, retrying int) delivery.Summary {
		return delivery.Summary{ChannelID: ch, OpID: "op1", Seq: seq, EntityType: ops.KindMessage, EntityID: "m1", AcceptedAt: 1713750000007,
			At: 1713750001000, Partition: n, Audience: 4, Sent: sent, Failed: failed, Retrying: retrying}
	}
	summary := delivery.Receipt{Kind: delivery.KindSummary, At: 1713750001000, BatchID: "b1",
		Summaries: []delivery.Summary{part(0, 1, 0, 0), part(9, 1, 1, 1)}}
	outcome := delivery.Receipt{Kind: delivery.KindOutcome, ChannelID: ch, OpID: "op1", Seq: seq, EntityType: ops.KindMessage, EntityID: "m1",
		AcceptedAt: 1713750000007, At: 1713750002000, DeliveryID: delivery.ID(seq, "dev1"), DeviceKey: "dev1", Outcome: delivery.Sent}

	publishReceipt(t, js, p, streams.SummariesSubject, summary)
	if st := sendStatus(t, p, "op1"); st.Status != delivery.StatusProcessing || st.Deliveries != (delivery.Counts{Sent: 2, Failed: 1, Pending: 1}) {
		t.Fatalf("after the summary: %+v", st)
	}
	publishReceipt(t, js, p, streams.ReceiptSubject(ch), outcome)
	publishReceipt(t, js, p, streams.SummariesSubject, summary) // recorded twice: replaces
	if st := sendStatus(t, p, "op1"); st.Status != delivery.StatusPartiallyFailed || st.Deliveries != (delivery.Counts{Sent: 3, Failed: 1}) ||
		st.UpdatedAt != 1713750002000 {
		t.Fatalf("after the retried delivery's outcome: %+v", st)
	}
}

func publishReceipt(t *testing.T, js jetstream.JetStream, p *projector.Projector, subject string, r delivery.Receipt) {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(context.Background(), subject, data)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.ReceiptsApplied() < ack.Sequence; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("receipts applied %d, want %d", p.ReceiptsApplied(), ack.Sequence)
		}
	}
}

func sendStatus(t *testing.T, p *projector.Projector, opID string) delivery.SendStatus {
	t.Helper()
	data, aerr := p.Read(&reads.Request{Route: reads.SendStatus, OpID: opID})
	if aerr != nil {
		t.Fatalf("send status of %s: %v", opID, aerr)
	}
	var st delivery.SendStatus
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFreshReplicaKnowsNothingOfOperationsThatLeftTheLog: a projector
// started on a log whose first operations have left it (retention) while
// their receipts stay (they are younger) answers /send_status for them as
// a live replica does, send_status_not_found, from its start: it answered with the
// receipts' counts until its first prune, a minute later.
func TestFreshReplicaKnowsNothingOfOperationsThatLeftTheLog(t *testing.T) {
	o := streams.DefaultOptions()
	o.Retention, o.DedupWindow = time.Second, 500*time.Millisecond
	b := brokertest.Start(t, brokertest.Streams(o))
	nc, js := b.NC, b.JS
	ctx := context.Background()
	// The receipts outlive the operations here, as a receipt made after
	// its operation does near the retention's edge.
	rs, err := js.Stream(ctx, streams.Receipts)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := rs.CachedInfo().Config
	rcfg.MaxAge = time.Hour
	if _, err := js.UpdateStream(ctx, rcfg); err != nil {
		t.Fatal(err)
	}
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	payload, _ := json.Marshal(ops.MessagePayload{MessageID: "m1", Title: "hello", Severity: "normal", OccurredAt: 1713750000000})
	env, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "gone", EntityID: "m1", AcceptedAt: 1713750000007, Payload: payload})
	ack, err := js.Publish(ctx, streams.OpSubject(ch, ops.KindMessage, "m1"), env)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := json.Marshal(delivery.Receipt{Kind: delivery.KindExpanded, ChannelID: ch, OpID: "gone", Seq: ack.Sequence, EntityType: ops.KindMessage,
		EntityID: "m1", AcceptedAt: 1713750000007, At: 1713750001000, Tasks: 2})
	rack, err := js.Publish(ctx, streams.ReceiptSubject(ch), r)
	if err != nil {
		t.Fatal(err)
	}
	// The operation leaves the log.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, err := js.Stream(ctx, streams.Ops)
		if err != nil {
			t.Fatal(err)
		}
		if s.CachedInfo().State.FirstSeq > ack.Sequence {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the operation did not age out of the log")
		}
	}

	p := start(t, nc, projector.Config{InMemory: true, Serve: true, PruneInterval: time.Hour})
	for deadline := time.Now().Add(10 * time.Second); p.ReceiptsApplied() < rack.Sequence; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("receipts applied %d, want %d", p.ReceiptsApplied(), rack.Sequence)
		}
	}
	if _, aerr := p.Read(&reads.Request{Route: reads.SendStatus, ChannelID: ch, OpID: "gone"}); aerr == nil || aerr.Code != apierr.SendStatusNotFound {
		t.Fatalf("send status of an operation that left the log: %v, want send_status_not_found", aerr)
	}
}

// TestSendStatusWaitsForItsReceiptsBarrier: /send_status is answered only
// once the replica has folded the receipts up to the read's barrier
// (MinReceiptsSeq: the receipts stream's last sequence when the read
// started). A barrier the fold has not reached within the read wait is
// projection_lagging, one over 10,000 receipts ahead is handed on at once
// (catching up), and one it reached is answered with what it folded. The
// replica answered at once from the receipts it had: processing, while
// another replica had answered sent.
func TestSendStatusWaitsForItsReceiptsBarrier(t *testing.T) {
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true, ReadWait: 100 * time.Millisecond})
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	payload, _ := json.Marshal(ops.MessagePayload{MessageID: "m1", Title: "hello", Severity: "normal", OccurredAt: 1713750000000})
	env, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: "op1", EntityID: "m1", AcceptedAt: 1713750000007, Payload: payload})
	ack, err := js.Publish(context.Background(), streams.OpSubject(ch, ops.KindMessage, "m1"), env)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, p, ack.Sequence)
	summary := func(sent int) delivery.Receipt {
		return delivery.Receipt{Kind: delivery.KindSummary, At: 1713750001000 + int64(sent), BatchID: fmt.Sprint("b", sent),
			Summaries: []delivery.Summary{{ChannelID: ch, OpID: "op1", Seq: ack.Sequence, EntityType: ops.KindMessage, EntityID: "m1",
				AcceptedAt: 1713750000007, At: 1713750001000 + int64(sent), Audience: 2, Sent: sent, Retrying: 2 - sent}}}
	}
	publishReceipt(t, js, p, streams.SummariesSubject, summary(1))
	read := func(barrier uint64) reads.Response {
		t.Helper()
		resp, ok := p.ServeLocal(&reads.Request{Route: reads.SendStatus, OpID: "op1", MinReceiptsSeq: barrier})
		if !ok {
			t.Fatal("not serving")
		}
		return resp
	}
	applied := p.ReceiptsApplied()
	if resp := read(applied + 1); resp.ErrorCode != apierr.ProjectionLagging || resp.CatchingUp {
		t.Fatalf("a barrier one receipt ahead, never appended: %+v; want projection_lagging after the read wait", resp)
	}
	if resp := read(applied + 10_001); resp.ErrorCode != apierr.ProjectionLagging || !resp.CatchingUp {
		t.Fatalf("a barrier 10,001 receipts ahead: %+v; want the read handed on at once", resp)
	}
	publishReceipt(t, js, p, streams.SummariesSubject, summary(2))
	resp := read(p.ReceiptsApplied())
	var st delivery.SendStatus
	if err := json.Unmarshal(resp.Data, &st); resp.ErrorCode != "" || err != nil || st.Status != delivery.StatusSent {
		t.Fatalf("a barrier folded: %+v (%v); want sent", resp, err)
	}
}
