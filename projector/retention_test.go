package projector_test

import (
	"context"
	"math/rand/v2"
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

// TestRetention: operations that age out of the stream leave the
// snapshots of live entities in place; the history drops them and says
// where it starts, and their send status goes. (Deleted Things and closed
// events go with their operations: TestPrunedProjectionEqualsARebuildOfTheTrimmedLog.)
func TestRetention(t *testing.T) {
	o := streams.DefaultOptions()
	o.Retention, o.DedupWindow = time.Second, 500*time.Millisecond
	b := brokertest.Start(t, brokertest.Streams(o))
	nc, js := b.NC, b.JS
	p := start(t, nc, projector.Config{InMemory: true, Serve: true, PruneInterval: 50 * time.Millisecond})
	early := workload(t, js, rand.New(rand.NewPCG(7, 8)), 100)
	waitApplied(t, p, early)
	snapBefore := countThings(t, p)
	// op00050 is only in the first workload (op_ids restart at op00000).
	if _, aerr := p.Read(&reads.Request{Route: reads.SendStatus, OpID: "op00050"}); aerr != nil {
		t.Fatalf("send status before retention: %v", aerr)
	}
	time.Sleep(1500 * time.Millisecond) // the first 100 operations age out
	last := workload(t, js, rand.New(rand.NewPCG(9, 10)), 20)
	waitApplied(t, p, last)
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, aerr := p.Read(&reads.Request{Route: reads.ChannelHistory, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Limit: 1000})
		if aerr != nil {
			t.Fatal(aerr)
		}
		var h reads.HistoryData
		if err := json.Unmarshal(data, &h); err != nil {
			t.Fatal(err)
		}
		if h.FirstSeq > early {
			for _, it := range h.Items {
				var item reads.HistoryItem
				_ = json.Unmarshal(it, &item)
				if item.Seq <= early {
					t.Fatalf("history still holds aged-out seq %d", item.Seq)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history still starts at %d, want after %d", h.FirstSeq, early)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		_, aerr := p.Read(&reads.Request{Route: reads.SendStatus, OpID: "op00050"})
		if aerr != nil && aerr.Code == apierr.SendStatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send status of an aged-out operation: %v, want send_status_not_found", aerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := countThings(t, p); got < snapBefore {
		t.Fatalf("live snapshots lost with retention: %d before, %d after", snapBefore, got)
	}
}

// countThings counts the Things of the workload's channels that are not
// deleted.
func countThings(t *testing.T, p *projector.Projector) int {
	t.Helper()
	n := 0
	for _, ch := range []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "7VNDECTMTAYVFHY2G194E2AY8Z"} {
		data, aerr := p.Read(&reads.Request{Route: reads.ChannelThings, ChannelID: ch, Limit: 1000})
		if aerr != nil {
			t.Fatal(aerr)
		}
		var l reads.ListData
		_ = json.Unmarshal(data, &l)
		for _, it := range l.Items {
			var th struct {
				State string `json:"state"`
			}
			_ = json.Unmarshal(it, &th)
			if th.State != ops.ThingDeleted {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no things")
	}
	return n
}

// TestReceiptDeadLettersGoWithTheirEntries: a receipt the fold set aside
// is listed until the receipts stream's retention takes its entry; then
// its dead letter goes too (it was kept for ever, and re-read at each
// start).
func TestReceiptDeadLettersGoWithTheirEntries(t *testing.T) {
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true, PruneInterval: 20 * time.Millisecond})
	bad := publish(t, js, streams.ReceiptSubject(healCh), []byte("{oops"))
	good, _ := json.Marshal(delivery.Receipt{Kind: delivery.KindExpanded, ChannelID: healCh, OpID: "op-1", Seq: 1,
		EntityType: ops.KindMessage, EntityID: "m1", Tasks: 1})
	last := publish(t, js, streams.ReceiptSubject(healCh), good)
	waitReceipts(t, p, last)
	if _, total, err := p.DeadLetters(10); err != nil || total != 1 {
		t.Fatalf("dead letters before retention: %d (%v), want the bad receipt's", total, err)
	}
	if got := metric(t, p, "pushgo_projector_dead_letters", streams.Receipts); got != 1 {
		t.Fatalf("dead letters held of PUSHGO_RECEIPTS: %v, want 1", got)
	}
	s, err := js.Stream(context.Background(), streams.Receipts)
	if err != nil {
		t.Fatal(err)
	}
	// What retention does: the entries before the good receipt go.
	if err := s.Purge(context.Background(), jetstream.WithPurgeSequence(bad+1)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, total, err := p.DeadLetters(10)
		if err != nil {
			t.Fatal(err)
		}
		if total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead letter of a receipt that left its stream is still listed (%d)", total)
		}
	}
	if got := metric(t, p, "pushgo_projector_dead_letters", streams.Receipts); got != 0 {
		t.Fatalf("dead letters held of PUSHGO_RECEIPTS after retention: %v, want 0", got)
	}
}
