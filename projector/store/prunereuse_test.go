package store

import (
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestPruneKeepsTheRecordOfAReusedOpID: a channel uses an op_id again
// (past the duplicate window) as its old operation leaves retention, and
// the fold commits the new operation's record after Prune read the old
// one and before Prune commits. The record answers for the new operation:
// /send_status of that op_id is not "not found", and a retry of it is not
// taken for a new operation.
func TestPruneKeepsTheRecordOfAReusedOpID(t *testing.T) {
	s := open(t)
	fold := func(seq uint64, entityID string) {
		t.Helper()
		raw := `{"op":"message.create","channel_id":"c1","op_id":"reused","entity_id":"` + entityID + `","accepted_at":1000}`
		var env ops.Envelope
		if err := json.Unmarshal([]byte(raw), &env); err != nil {
			t.Fatal(err)
		}
		b := s.NewBatch()
		b.AppendHistory(&env, []byte(raw), seq)
		b.PutOp(&env, seq)
		if err := b.Commit(seq); err != nil {
			t.Fatal(err)
		}
	}
	fold(3, "m-old")
	s.hooks.beforePruneCommit = func() { fold(12, "m-new") }

	h, _, err := s.Prune(10)
	if err != nil {
		t.Fatal(err)
	}
	if h != 1 {
		t.Fatalf("pruned %d history items, want the old operation's 1", h)
	}
	st, err := s.SendStatus("c1", "reused")
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		t.Fatal("the reused op_id's record was deleted with its old operation: /send_status answers not found for the new one")
	}
	if st.EntityID != "m-new" {
		t.Errorf("the op_id's record names %s, want the new operation's m-new", st.EntityID)
	}
}

// TestLateReceiptBetweenAPrunesCommitsIsPrunedNext: a receipt of an
// operation being pruned, folded after the prune removed its op_id record
// and counts but before the prune's last commit, writes its counts and
// index key again; the next prune removes both, so /send_status does not
// answer for the pruned operation for ever.
func TestLateReceiptBetweenAPrunesCommitsIsPrunedNext(t *testing.T) {
	s := open(t)
	raw := `{"op":"message.create","channel_id":"c1","op_id":"late","entity_id":"m1","accepted_at":1000}`
	var env ops.Envelope
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.AppendHistory(&env, []byte(raw), 3)
	b.PutOp(&env, 3)
	if err := b.Commit(3); err != nil {
		t.Fatal(err)
	}
	var cursor uint64
	receipt := func(j string) {
		t.Helper()
		var r delivery.Receipt
		if err := json.Unmarshal([]byte(j), &r); err != nil {
			t.Fatal(err)
		}
		rb := s.NewBatch()
		if err := rb.ApplyReceipt(&r); err != nil {
			t.Fatal(err)
		}
		rb.Count()
		cursor++
		if err := rb.CommitReceipts(cursor); err != nil {
			t.Fatal(err)
		}
	}
	receipt(`{"kind":"expanded","channel_id":"c1","op_id":"late","seq":3,"entity_type":"message","entity_id":"m1","accepted_at":1000,"at":1100,"tasks":2}`)
	s.hooks.afterPruneRecords = func() {
		receipt(`{"kind":"outcome","channel_id":"c1","op_id":"late","seq":3,"entity_type":"message","entity_id":"m1","accepted_at":1000,"at":9000,"delivery_id":"3:dev1","device_key":"dev1","outcome":"sent"}`)
	}
	if _, _, err := s.Prune(10); err != nil {
		t.Fatal(err)
	}
	s.hooks.afterPruneRecords = nil
	if _, _, err := s.Prune(10); err != nil {
		t.Fatal(err)
	}
	st, err := s.SendStatus("c1", "late")
	if err != nil {
		t.Fatal(err)
	}
	if st != nil {
		t.Fatalf("after two prunes the pruned operation still has a send status: %+v", st)
	}
}
