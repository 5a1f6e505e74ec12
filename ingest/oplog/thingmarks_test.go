package oplog_test

import (
	"context"
	"testing"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestThingMarksFollowThingWrites: the marks a Writer keeps hold the
// sequence of the channel's last Thing write, and not of its events; a
// mark never goes back.
func TestThingMarksFollowThingWrites(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	marks := oplog.NewThingMarks()
	w, err := oplog.New(ctx, b.JS, oplog.Options{ThingMarks: marks})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	channelID := ids.NewChannelID()
	if got := marks.Last(channelID); got != 0 {
		t.Fatalf("mark before any write: %d", got)
	}
	created, aerr := w.Append(ctx, thing(t, channelID))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if got := marks.Last(channelID); got != created.Seq {
		t.Fatalf("mark after the thing's create at %d: %d", created.Seq, got)
	}
	ev, aerr := w.Append(ctx, event(t, ops.EventCreate, channelID, "", "", created.ThingID, "on the thing"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if got := marks.Last(channelID); got != created.Seq || ev.Seq <= created.Seq {
		t.Fatalf("an event at %d moved the Thing mark to %d (create at %d)", ev.Seq, got, created.Seq)
	}
	marks.Note(channelID, created.Seq-1)
	if got := marks.Last(channelID); got != created.Seq {
		t.Fatalf("an earlier sequence moved the mark back to %d", got)
	}
}
