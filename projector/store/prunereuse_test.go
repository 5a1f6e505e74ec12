package store

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"

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
	foldMessage(t, s, 3, "reused", "m-old")
	s.hooks.beforePruneCommit = func() { foldMessage(t, s, 12, "reused", "m-new") }

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
	foldMessage(t, s, 3, "late", "m1")
	var cursor uint64
	receipt := func(j string) {
		t.Helper()
		cursor++
		foldReceipt(t, s, cursor, j)
	}
	receipt(`{"kind":"expanded","channel_id":"c1","op_id":"late","seq":3,"entity_type":"message","entity_id":"m1","accepted_at":1000,"at":1100,"tasks":2}`)
	// The late receipt is folded into its batch before the prune begins
	// (so it is not dropped as pruned), and committed between the prune's
	// removal of the records and its last commit.
	var late delivery.Receipt
	if err := json.Unmarshal([]byte(`{"kind":"outcome","channel_id":"c1","op_id":"late","seq":3,"entity_type":"message","entity_id":"m1","accepted_at":1000,"at":9000,"delivery_id":"3:dev1","device_key":"dev1","outcome":"sent"}`), &late); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	if err := b.ApplyReceipt(&late); err != nil {
		t.Fatal(err)
	}
	b.Count()
	s.hooks.afterPruneRecords = func() {
		cursor++
		if err := b.CommitReceipts(cursor); err != nil {
			t.Error(err)
		}
	}
	if _, _, err := s.Prune(10); err != nil {
		t.Fatal(err)
	}
	s.hooks.afterPruneRecords = nil
	// The premise: the late receipt wrote the pruned operation's counts
	// again.
	if st, err := s.SendStatus("c1", "late"); err != nil || st == nil {
		t.Fatalf("after the first prune, the late receipt's counts: %+v, %v (the race did not happen)", st, err)
	}
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

// TestPruneKeepsALaterOperationsCounts: the receipts fold recorded the
// receipts of an operation that uses an op_id again before the ops fold
// wrote that operation's op_id record; a prune of the old operation then
// leaves the new one's counts, and /send_status shows them once the
// record is written.
func TestPruneKeepsALaterOperationsCounts(t *testing.T) {
	s := open(t)
	foldMessage(t, s, 3, "again", "m-old")
	foldReceipt(t, s, 1, `{"kind":"expanded","channel_id":"c1","op_id":"again","seq":12,"entity_type":"message","entity_id":"m-new","accepted_at":1000,"at":1100,"tasks":2}`)
	if _, _, err := s.Prune(10); err != nil {
		t.Fatal(err)
	}
	foldMessage(t, s, 12, "again", "m-new")
	st, err := s.SendStatus("c1", "again")
	if err != nil {
		t.Fatal(err)
	}
	if st == nil || st.EntityID != "m-new" || st.Deliveries.Pending != 2 {
		t.Fatalf("send status of the later operation after the prune: %+v, want m-new with its 2 tasks pending", st)
	}
}

// TestPruneStopsAtARecordItCannotRead: an op_id record that does not
// decode (a corrupt store) ends the prune with ErrCorrupt, which rebuilds
// the projection, and deletes nothing: deleted all the same, the record
// could be a later operation's, whose /send_status would be lost.
func TestPruneStopsAtARecordItCannotRead(t *testing.T) {
	s := open(t)
	foldMessage(t, s, 1, "again", "m1")
	foldMessage(t, s, 5, "again", "m5") // the same op_id, past the duplicate window
	if err := s.db.Set(opChannelKey("again", "c1"), []byte{0xff}, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Prune(3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("prune over a corrupt op_id record: %v, want ErrCorrupt", err)
	}
	if raw, err := s.get(opChannelKey("again", "c1")); err != nil || raw == nil {
		t.Fatalf("the record was deleted (%v)", err)
	}
}

// TestLateReceiptOfAPrunedOperationAfterARestart: what the last prune
// passed is kept with the store, so a restarted projector too records
// nothing of a late receipt of an operation that left the log.
func TestLateReceiptOfAPrunedOperationAfterARestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	foldMessage(t, s, 1, "old", "m1")
	if _, _, err := s.Prune(4); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	foldReceipt(t, s, 1, `{"kind":"outcome","channel_id":"c1","op_id":"old","seq":1,"entity_type":"message","entity_id":"m1","accepted_at":1000,`+
		`"at":9000,"delivery_id":"1:dev4","device_key":"dev4","outcome":"failed"}`)
	if st, err := s.SendStatus("c1", "old"); err != nil || st != nil {
		t.Fatalf("status of a pruned operation after a late receipt: %+v %v, want none", st, err)
	}
}

// foldMessage folds a message.create of channel c1 at seq, as the ops fold
// does (its history item and op_id record).
func foldMessage(t *testing.T, s *Store, seq uint64, opID, entityID string) {
	t.Helper()
	raw := `{"op":"message.create","channel_id":"c1","op_id":"` + opID + `","entity_id":"` + entityID + `","accepted_at":1000}`
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

// foldReceipt folds one receipt (JSON) as the receipts fold does, its
// stream cursor at cursor.
func foldReceipt(t *testing.T, s *Store, cursor uint64, receipt string) {
	t.Helper()
	var r delivery.Receipt
	if err := json.Unmarshal([]byte(receipt), &r); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	if err := b.ApplyReceipt(&r); err != nil {
		t.Fatal(err)
	}
	b.Count()
	if err := b.CommitReceipts(cursor); err != nil {
		t.Fatal(err)
	}
}
