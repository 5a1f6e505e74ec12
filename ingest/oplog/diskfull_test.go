package oplog_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/storage"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestAStoredOperationRetriedOnAFullDiskIsReplayed: while the disk under
// the broker's store measures full, a new operation is refused 507
// store_full before it is published, but the retry of one already stored
// is answered as the first time through a writer that never saw it
// (another replica, a restart): a create, whose first try reads no state,
// and an update followed by a later one, which only the broker's
// duplicate window remembers. Refused before the broker saw them, both
// were 507 "nothing was stored" for a stored write.
func TestAStoredOperationRetriedOnAFullDiskIsReplayed(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t)
	var full atomic.Bool
	disk := func() storage.Disk {
		if full.Load() {
			return storage.Disk{Dir: "/data/jetstream", Free: 0, Size: 1 << 30}
		}
		return storage.Disk{Dir: "/data/jetstream", Free: 1 << 29, Size: 1 << 30}
	}
	open := func() *oplog.Writer {
		w, err := oplog.New(ctx, b.JS, oplog.Options{Disk: disk})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		return w
	}
	first := open()
	channelID := ids.NewChannelID()
	created, aerr := first.Append(ctx, event(t, ops.EventCreate, channelID, "create-1", "", "", "hello"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	updated, aerr := first.Append(ctx, event(t, ops.EventUpdate, channelID, "update-1", created.EntityID, "", "step 1"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := first.Append(ctx, event(t, ops.EventUpdate, channelID, "update-2", created.EntityID, "", "step 2")); aerr != nil {
		t.Fatal(aerr)
	}

	full.Store(true)
	retry := open()
	for _, c := range []struct {
		v    *ops.Validated
		orig oplog.Result
	}{
		{event(t, ops.EventCreate, channelID, "create-1", "", "", "hello"), created},
		{event(t, ops.EventUpdate, channelID, "update-1", created.EntityID, "", "step 1"), updated},
	} {
		got, aerr := retry.Append(ctx, c.v)
		if aerr != nil || !got.Replayed || got.Seq != c.orig.Seq {
			t.Errorf("retry of %s with the disk full: %+v, %v; want a replay of %+v", c.orig.OpID, got, aerr, c.orig)
		}
	}
	if _, aerr := retry.Append(ctx, event(t, ops.EventCreate, channelID, "create-2", "", "", "new")); aerr == nil || aerr.Code != apierr.StoreFull {
		t.Fatalf("a new create with the disk full: %v, want %s", aerr, apierr.StoreFull)
	}
}
