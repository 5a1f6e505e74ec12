package store

import (
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestPruneCommitsAsItGoes: a prune of many operations (a shortened
// retention, the first after a long stop) commits whenever it holds
// pruneHold op_ids, instead of holding every pruned operation's until its
// end, and ends with what a prune in one go leaves: no history item and
// no send status below first, everything from first on kept.
func TestPruneCommitsAsItGoes(t *testing.T) {
	defer func(old int) { pruneHold = old }(pruneHold)
	pruneHold = 3
	s := open(t)
	const ops, first = 20, 15
	for seq := 1; seq <= ops; seq++ {
		id := "op-" + strconv.Itoa(seq)
		foldMessage(t, s, uint64(seq), id, "m"+strconv.Itoa(seq))
		foldReceipt(t, s, uint64(seq), `{"kind":"expanded","channel_id":"c1","op_id":"`+id+`","seq":`+strconv.Itoa(seq)+
			`,"entity_type":"message","entity_id":"m`+strconv.Itoa(seq)+`","accepted_at":1000,"at":1100,"tasks":1}`)
		foldReceipt(t, s, uint64(ops+seq), `{"kind":"outcome","channel_id":"c1","op_id":"`+id+`","seq":`+strconv.Itoa(seq)+
			`,"entity_type":"message","entity_id":"m`+strconv.Itoa(seq)+`","accepted_at":1000,"at":9000,"delivery_id":"`+strconv.Itoa(seq)+
			`:dev1","device_key":"dev1","outcome":"sent"}`)
	}
	commits := 0
	s.hooks.beforePruneCommit = func() { commits++ }
	h, ss, err := s.Prune(first)
	if err != nil {
		t.Fatal(err)
	}
	if h != first-1 || ss != first-1 {
		t.Fatalf("pruned %d history items and %d send statuses, want %d of each", h, ss, first-1)
	}
	if commits < 2*(first-1)/pruneHold {
		t.Fatalf("a prune of %d operations' history and send status committed %d times holding at most %d op_ids: it held more", first-1, commits, pruneHold)
	}
	page, err := s.History("c1", 0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != ops-first+1 || page.FirstSeq != first {
		t.Fatalf("history after the prune: %d items from %d, want %d from %d", len(page.Items), page.FirstSeq, ops-first+1, first)
	}
	for seq := 1; seq <= ops; seq++ {
		st, err := s.SendStatus("c1", "op-"+strconv.Itoa(seq))
		if err != nil {
			t.Fatal(err)
		}
		if kept := seq >= first; (st != nil) != kept {
			t.Errorf("operation %d: send status %+v after a prune below %d", seq, st, first)
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: outcomeSeqPrefix(0), UpperBound: outcomeSeqPrefix(first)})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		t.Errorf("an outcome of a pruned operation is left: %q", it.Key())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	// A second prune finds nothing.
	if h, ss, err := s.Prune(first); err != nil || h+ss != 0 {
		t.Fatalf("a second prune: %d, %d, %v; want nothing left", h, ss, err)
	}
}
