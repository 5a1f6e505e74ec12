package oplog_test

import (
	"context"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

func message(t *testing.T, channelID, opID, title string) *ops.Validated {
	t.Helper()
	r := &ops.MessageRequest{ChannelID: ptr(channelID), Password: ptr("correct-horse"), Title: ptr(title), Body: ptr("disk 91% full")}
	if opID != "" {
		r.OpID = ptr(opID)
	}
	v, aerr := ops.ValidateMessage(r, int64(at))
	if aerr != nil {
		t.Fatalf("validate message: %v", aerr)
	}
	return v
}

// TestMessagesWithAGeneratedOpIDShareTheirChannelsSubject: a message whose
// op_id the gateway generated is appended to its channel's messages
// subject (one subject per channel, not one per message, in the broker's
// per-subject index), each a message of its own with its own id, in order;
// a message with the sender's op_id keeps a subject of its own, so that its
// retry past the broker's duplicate window is still recognised by that
// subject's sequence: answered as a replay, nothing appended.
func TestMessagesWithAGeneratedOpIDShareTheirChannelsSubject(t *testing.T) {
	ctx := context.Background()
	const window = 200 * time.Millisecond
	js, stream := opsWithDuplicateWindow(t, window)
	w, err := oplog.New(ctx, js, oplog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	t.Cleanup(w.Close)

	channelID, other := ids.NewChannelID(), ids.NewChannelID()
	var generated []oplog.Result
	for _, ch := range []string{channelID, channelID, other, channelID} {
		res, aerr := w.Append(ctx, message(t, ch, "", "cpu high"))
		if aerr != nil {
			t.Fatal(aerr)
		}
		generated = append(generated, res)
	}
	own, aerr := w.Append(ctx, message(t, channelID, "sender-op-1", "cpu high"))
	if aerr != nil {
		t.Fatal(aerr)
	}

	seen := map[string]bool{}
	for i, res := range generated {
		m, err := stream.GetMsg(ctx, res.Seq)
		if err != nil {
			t.Fatal(err)
		}
		ch := channelID
		if i == 2 {
			ch = other
		}
		if m.Subject != streams.MessagesSubject(ch) {
			t.Errorf("message %d (generated op_id) on %q, want its channel's %q", i, m.Subject, streams.MessagesSubject(ch))
		}
		if m.Header.Get(streams.HeaderOpID) != res.OpID || res.EntityID == "" || seen[res.EntityID] {
			t.Errorf("message %d: op_id header %q, result %+v: want its own op_id and a new entity", i, m.Header.Get(streams.HeaderOpID), res)
		}
		seen[res.EntityID] = true
		if i > 0 && res.Seq <= generated[i-1].Seq {
			t.Errorf("message %d at %d, after %d: out of order", i, res.Seq, generated[i-1].Seq)
		}
	}
	m, err := stream.GetMsg(ctx, own.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if want := streams.OpSubject(channelID, ops.KindMessage, own.EntityID); m.Subject != want {
		t.Errorf("message with the sender's op_id on %q, want %q", m.Subject, want)
	}

	forgetMsgIDs(t, js) // the broker forgets message ids a window after they were stored
	before, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := oplog.New(ctx, js, oplog.Options{}) // nothing cached: another replica, or a restart
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	t.Cleanup(again.Close)
	got, aerr := again.Append(ctx, message(t, channelID, "sender-op-1", "cpu high"))
	if aerr != nil || !got.Replayed || got.EntityID != own.EntityID || got.Seq != own.Seq {
		t.Fatalf("retry past the window: %+v, %v; want a replay of %+v", got, aerr, own)
	}
	after, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.Msgs != before.State.Msgs {
		t.Fatalf("the log holds %d operations after the retry, want %d", after.State.Msgs, before.State.Msgs)
	}
}
