package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/schemas/streams"
)

// The -diag HTTP + publish row measures what it says: every request the
// load process counted as a success is one body in the stream, as the
// load sent it, spread over the raw anchor's entity subjects.
func TestAppendFloorPublishesEachBody(t *testing.T) {
	ctx := context.Background()
	f, err := startAppendFloor(ctx, &options{entities: 10, bodySize: 400}, syncMode{sync: gateway.Defaults().Sync}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.close(); err != nil {
			t.Error(err)
		}
	}()
	reps, _, err := runLoads(ctx, nil, updateSpec(f.addr()).count(4, 200, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].Succeeded != 200 || reps[0].Errors != 0 {
		t.Fatalf("load: %+v", reps[0])
	}
	s, err := f.raw.js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 200 || info.State.NumSubjects != 20 {
		t.Fatalf("the stream holds %d messages on %d subjects; want 200 on 20", info.State.Msgs, info.State.NumSubjects)
	}
	m, err := s.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Data) < 300 || m.Data[0] != '{' {
		t.Fatalf("the last message is not a load body: %q", m.Data)
	}
}
