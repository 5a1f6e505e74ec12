package oplog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestCreateRetriedPastTheDuplicateWindow: a create reads nothing before
// its append, so a retry of a create that only the log remembers (another
// replica or a restarted process made it, and the broker's duplicate window
// has passed) is caught by the append's expected sequence, not by a read.
// Through a writer that never saw the original, the retry of a create
// alone, and of a create followed by an update, is answered as a replay
// of the original (same entity, the create's sequence); the same op_id
// with another body is op_id_conflict; and the log holds nothing more.
func TestCreateRetriedPastTheDuplicateWindow(t *testing.T) {
	ctx := context.Background()
	const window = 200 * time.Millisecond
	js, stream := opsWithDuplicateWindow(t, window)
	open := func() *oplog.Writer {
		w, err := oplog.New(ctx, js, oplog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		t.Cleanup(w.Close)
		return w
	}
	first := open()
	channelID := ids.NewChannelID()
	alone, aerr := first.Append(ctx, event(t, ops.EventCreate, channelID, "create-alone", "", "", "hello"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	updated, aerr := first.Append(ctx, event(t, ops.EventCreate, channelID, "create-then-update", "", "", "hello"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := first.Append(ctx, event(t, ops.EventUpdate, channelID, "", updated.EntityID, "", "later")); aerr != nil {
		t.Fatal(aerr)
	}
	forgetMsgIDs(t, js) // the broker forgets message ids a window after they were stored
	before, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}

	retry := open() // a writer with nothing cached: another replica, or after a restart
	for _, orig := range []oplog.Result{alone, updated} {
		got, aerr := retry.Append(ctx, event(t, ops.EventCreate, channelID, orig.OpID, "", "", "hello"))
		if aerr != nil || !got.Replayed || got.EntityID != orig.EntityID || got.Seq != orig.Seq {
			t.Fatalf("retry of %s: %+v, %v; want a replay of %+v", orig.OpID, got, aerr, orig)
		}
	}
	for _, orig := range []oplog.Result{alone, updated} {
		_, aerr := open().Append(ctx, event(t, ops.EventCreate, channelID, orig.OpID, "", "", "another body"))
		if aerr == nil || aerr.Code != apierr.OpIDConflict {
			t.Fatalf("the op_id %s with another body: %v, want %s", orig.OpID, aerr, apierr.OpIDConflict)
		}
	}
	after, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.Msgs != before.State.Msgs {
		t.Fatalf("the log holds %d operations after the retries, want %d", after.State.Msgs, before.State.Msgs)
	}
}

// forgetMsgIDs returns once the broker has forgotten the message ids of
// PUSHGO_OPS stored before the call: a probe's id, stored after them, is
// stored again (not answered as a duplicate) only when the window has
// passed for it, and so for them.
func forgetMsgIDs(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	subject, id := streams.MessagesSubject(ids.NewChannelID()), "window-probe-"+ids.NewOpID()
	publish := func() *jetstream.PubAck {
		ack, err := js.Publish(context.Background(), subject, []byte("{}"), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	publish()
	deadline := time.Now().Add(time.Minute)
	for publish().Duplicate {
		if time.Now().After(deadline) {
			t.Fatal("the broker still knows a message id a minute after it was stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opsWithDuplicateWindow starts a broker whose PUSHGO_OPS forgets message
// ids after window, so that a test can retry past it.
func opsWithDuplicateWindow(t *testing.T, window time.Duration) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	ctx := context.Background()
	_, js := brokertest.Start(t).Conn(t)
	stream, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.Duplicates = window
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return js, stream
}
