package oplog

import (
	"context"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

// TestUpdatePastItsDeadlinePublishesNothing: an update that waited for
// its entity's lock (behind an append held up by a slow broker) until its
// request's deadline had passed is answered 503 append_unavailable
// without publishing, although its entity's state is in the writer's
// cache and nothing else on its way asks the broker: sent then, it would
// land after its client had been told it failed. The next update of the
// entity is the log's next operation after the create.
func TestUpdatePastItsDeadlinePublishesNothing(t *testing.T) {
	b := brokertest.Start(t)
	_, js := b.Conn(t)
	bg := context.Background()
	w, err := New(bg, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	channelID := ids.NewChannelID()
	at := wire.Millis(1_800_000_000_000)
	validated := func(op ops.Name, eventID, opID, message string) *ops.Validated {
		r := &ops.EventRequest{ChannelID: &channelID, Status: new(string), Message: &message, Severity: new(string), EventTime: &at, OpID: &opID}
		*r.Status, *r.Severity = "open", "high"
		if op == ops.EventCreate {
			title := "disk full"
			r.Title = &title
		} else {
			r.EventID = &eventID
		}
		v, aerr := ops.ValidateIntegrationEvent(op, r)
		if aerr != nil {
			t.Fatalf("validate %s: %v", op, aerr)
		}
		return v
	}
	created, aerr := w.Append(bg, validated(ops.EventCreate, "", "create", "created"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	st := w.stripes.of(streams.OpSubject(channelID, ops.KindEvent, created.EntityID))
	st.mu.Lock() // the append ahead of it, waiting for the broker
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	late := make(chan *apierr.Error, 1)
	go func() {
		_, aerr := w.Append(ctx, validated(ops.EventUpdate, created.EntityID, "late", "waited past its deadline"))
		late <- aerr
	}()
	<-ctx.Done() // its deadline passes while it waits for the lock
	st.mu.Unlock()
	if aerr := <-late; aerr == nil || aerr.Code != apierr.AppendUnavailable {
		t.Fatalf("the late update: %v, want %s", aerr, apierr.AppendUnavailable)
	}
	next, aerr := w.Append(bg, validated(ops.EventUpdate, created.EntityID, "next", "in time"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if next.Seq != created.Seq+1 {
		t.Fatalf("the next update is at sequence %d, want %d: the late update was published", next.Seq, created.Seq+1)
	}
}
