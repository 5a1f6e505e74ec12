package oplog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// silentLog returns a writer with the given append timeout, and an event
// it created (in its cache), after which PUSHGO_OPS is deleted and a
// subscriber put in its place that takes every operation and never
// answers: an append's acknowledgement never comes (and no "no
// responders" ends it early). taken hears of each operation it took.
func silentLog(t *testing.T, timeout time.Duration) (w *oplog.Writer, channelID, eventID string, taken <-chan struct{}) {
	t.Helper()
	b := brokertest.Start(t)
	ctx := context.Background()
	nc, js := b.Conn(t)
	w, err := oplog.New(ctx, js, oplog.Options{AppendTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	channelID = ids.NewChannelID()
	res, aerr := w.Append(ctx, event(t, ops.EventCreate, channelID, "", "", "", "created"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if err := js.DeleteStream(ctx, streams.Ops); err != nil {
		t.Fatal(err)
	}
	took := make(chan struct{}, 16)
	sub, err := nc.Subscribe("pushgo.op.>", func(*nats.Msg) { took <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w, channelID, res.EntityID, took
}

// TestAppendEndsAtItsTimeout: an append whose acknowledgement never comes
// answers 503 append_unavailable once the writer's append timeout has
// passed, and not before: a message, and an update read from the
// writer's cache (the two paths that wait for nothing but their
// acknowledgement, and on which the writer keeps no timer of its own: its
// publisher ends late waits).
func TestAppendEndsAtItsTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	w, channelID, eventID, taken := silentLog(t, timeout)
	for _, v := range []struct {
		name string
		op   *ops.Validated
	}{
		{"message", message(t, channelID, "", "never acknowledged")},
		{"update", event(t, ops.EventUpdate, channelID, "", eventID, "", "never acknowledged")},
	} {
		start := time.Now()
		res, aerr := w.Append(context.Background(), v.op)
		elapsed := time.Since(start)
		if aerr == nil || aerr.Code != apierr.AppendUnavailable {
			t.Fatalf("%s: %+v, %v; want %s", v.name, res, aerr, apierr.AppendUnavailable)
		}
		if elapsed < timeout {
			t.Fatalf("%s: answered after %v, before the append timeout (%v)", v.name, elapsed, timeout)
		}
		// The append may have landed: the refusal names the op_id that a
		// retry is answered as the first time with, here generated.
		if !ids.IsGenerated(aerr.OpID) {
			t.Fatalf("%s: refused with op_id %q, want the one generated for it", v.name, aerr.OpID)
		}
		select {
		case <-taken:
		default:
			t.Fatalf("%s: answered without publishing", v.name)
		}
	}
}

// TestAppendEndsWithItsRequest: an append waiting for an acknowledgement
// that never comes ends as soon as its request's context is cancelled,
// however long the append timeout.
func TestAppendEndsWithItsRequest(t *testing.T) {
	w, channelID, _, taken := silentLog(t, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-taken // published: the append waits for its acknowledgement
		cancel()
	}()
	res, aerr := w.Append(ctx, message(t, channelID, "", "cancelled"))
	if aerr == nil {
		t.Fatalf("cancelled append: %+v, no error", res)
	}
}

// TestCloseEndsAWaitingAppend: closing the writer (the service stopping
// while requests are in flight) ends an append waiting for an
// acknowledgement that will no longer be received at once, with 503
// append_unavailable, however long the append timeout: it does not keep
// its entity's lock or its request forever.
func TestCloseEndsAWaitingAppend(t *testing.T) {
	w, channelID, eventID, taken := silentLog(t, time.Hour)
	go func() {
		<-taken // published: the append waits for its acknowledgement
		w.Close()
	}()
	res, aerr := w.Append(context.Background(), event(t, ops.EventUpdate, channelID, "", eventID, "", "in flight at close"))
	if aerr == nil || aerr.Code != apierr.AppendUnavailable {
		t.Fatalf("append in flight at close: %+v, %v; want %s", res, aerr, apierr.AppendUnavailable)
	}
}
