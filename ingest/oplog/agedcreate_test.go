package oplog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestCreateRetriedOnceTheLogIsTrimmed: once the log has lost operations,
// a create with the sender's op_id whose entity the projection has
// (Options.FindEntity) is a replay only when the log holds nothing of the
// entity (all of it aged out): answered with the entity's last sequence,
// nothing appended. While the log still holds the create, its retry is
// decided by the log as before: the same body is a replay of the create,
// another body op_id_conflict (a first version answered every such create
// a replay, another body included). A create whose projection lookup fails
// is appended, not refused.
func TestCreateRetriedOnceTheLogIsTrimmed(t *testing.T) {
	ctx := context.Background()
	js, stream := opsWithDuplicateWindow(t, 200*time.Millisecond)
	// The log loses its first operation to a short retention, which is
	// then set back: the rest of the test's operations stay.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	maxAge := cfg.MaxAge
	cfg.MaxAge = time.Second
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, streams.MessagesSubject(ids.NewChannelID()), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.FirstSeq > 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg.MaxAge = maxAge
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	projection := map[string]uint64{} // entity id → last sequence
	lookups := 0
	var unreachableID string
	open := func() *oplog.Writer {
		w, err := oplog.New(ctx, js, oplog.Options{FindEntity: func(_ context.Context, _ string, _ ops.Kind, id string) (reads.EntityHead, *apierr.Error) {
			mu.Lock()
			defer mu.Unlock()
			lookups++
			if id == unreachableID {
				return reads.EntityHead{}, apierr.New(apierr.ReadUnavailable)
			}
			return reads.EntityHead{LastSeq: projection[id], State: ops.EventOngoing}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		return w
	}
	channelID := ids.NewChannelID()
	orig, aerr := open().Append(ctx, event(t, ops.EventCreate, channelID, "in-the-log", "", "", "hello"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	aged := event(t, ops.EventCreate, channelID, "aged-out", "", "", "hello")
	mu.Lock()
	projection[orig.EntityID] = orig.Seq
	agedID := ids.DeriveEntityID(channelID, string(ops.EventCreate), "aged-out")
	projection[agedID] = 1 // folded, and gone from the log
	mu.Unlock()
	forgetMsgIDs(t, js)

	// Each through a writer with nothing cached (a restart, another replica).
	if _, aerr := open().Append(ctx, event(t, ops.EventCreate, channelID, "in-the-log", "", "", "another body")); aerr == nil || aerr.Code != apierr.OpIDConflict {
		t.Fatalf("the op_id of a create the log holds, with another body: %v, want %s", aerr, apierr.OpIDConflict)
	}
	if got, aerr := open().Append(ctx, event(t, ops.EventCreate, channelID, "in-the-log", "", "", "hello")); aerr != nil || !got.Replayed || got.Seq != orig.Seq {
		t.Fatalf("its retry with the same body: %+v, %v; want a replay at %d", got, aerr, orig.Seq)
	}
	before, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, aerr := open().Append(ctx, aged); aerr != nil || !got.Replayed || got.Seq != 1 || got.EntityID != agedID {
		t.Fatalf("the retry of a create whose entity aged out of the log: %+v, %v; want a replay at 1", got, aerr)
	}
	after, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.LastSeq != before.State.LastSeq {
		t.Fatalf("the aged create's retry appended %d operations", after.State.LastSeq-before.State.LastSeq)
	}
	unreachableID = ids.DeriveEntityID(channelID, string(ops.EventCreate), "no-projector")
	if got, aerr := open().Append(ctx, event(t, ops.EventCreate, channelID, "no-projector", "", "", "hello")); aerr != nil || got.Replayed {
		t.Fatalf("a create whose projection lookup failed: %+v, %v; want it appended", got, aerr)
	}
	mu.Lock()
	defer mu.Unlock()
	if lookups == 0 {
		t.Fatal("the projection was never asked")
	}
}
