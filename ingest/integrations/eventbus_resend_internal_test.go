package integrations

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// ebLog stands in for the operation log and its projection: the first
// operation of an op_id is stored; another with that op_id is replayed
// when its body is the same, else refused op_id_conflict, as the writer
// answers. Read answers an Event's snapshot (its started_at) from the
// stored create.
type ebLog struct {
	mu       sync.Mutex
	byOpID   map[string]*ops.Validated
	appended []*ops.Validated
}

func (l *ebLog) Append(_ context.Context, v *ops.Validated) (oplog.Result, *apierr.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.byOpID[v.OpID]; ok {
		if prev.BodyHash != v.BodyHash {
			return oplog.Result{}, apierr.New(apierr.OpIDConflict)
		}
		return oplog.Result{OpID: v.OpID, Replayed: true}, nil
	}
	if l.byOpID == nil {
		l.byOpID = map[string]*ops.Validated{}
	}
	l.byOpID[v.OpID] = v
	l.appended = append(l.appended, v)
	return oplog.Result{OpID: v.OpID}, nil
}

func (l *ebLog) Read(_ context.Context, req *reads.Request) (jsontext.Value, *apierr.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.appended {
		if v.Op == ops.EventCreate && req.Route == reads.EventGet && ids.DeriveEntityID(v.ChannelID, string(ops.EventCreate), v.OpID) == req.EventID {
			return jsontext.Value(fmt.Sprintf(`{"event_id":%q,"started_at":%d}`, req.EventID, *v.Payload.(*ops.EventPayload).StartedAt)), nil
		}
	}
	return nil, apierr.New(apierr.EventNotFound)
}

func (l *ebLog) ReadConsistent(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error) {
	return l.Read(ctx, req)
}

// eventTimes is the event_time of every operation appended, in order.
func (l *ebLog) eventTimes() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int64
	for _, v := range l.appended {
		out = append(out, v.Payload.(*ops.EventPayload).EventTime)
	}
	return out
}

// TestEventBusResendAnswersTheRecordedTime: a CloudEvent sent without a
// time is recorded at its receive time; sent again a millisecond later
// (the same source and id), it is the same Event, and the answer says the
// time recorded, not the new receive time, which the Event never had; so
// too for a resend of a CloudEvent first sent with a time. A resend after
// a first request that failed before its close makes the close at the
// recorded time, as the first request would have. Until 6 December the
// resend's answer said its own receive time ("…08.234Z" for an Event
// recorded at "…08.233Z").
func TestEventBusResendAnswersTheRecordedTime(t *testing.T) {
	first := time.Date(2026, 12, 6, 10, 15, 8, 233_000_000, time.UTC)
	start := func(t *testing.T, l *ebLog) (*echo.Echo, *time.Time) {
		now := first
		e := echo.New()
		r := Register(e, Deps{Tokens: fakeTokens{}, Appender: l, Reader: l, Channels: ebChannels{}, MaxInFlight: 1,
			Now: func() time.Time { return now }})
		t.Cleanup(r.Close)
		return e, &now
	}
	send := func(t *testing.T, e *echo.Echo, body string) map[string]any {
		t.Helper()
		rec := serve(e, RouteEventBusNew, ebAuth, body)
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		evs, _ := ebBody(t, rec)["events"].([]any)
		if len(evs) != 1 {
			t.Fatalf("answer %s", rec.Body)
		}
		return evs[0].(map[string]any)
	}
	const timeless = `{"eventList":[{"source":"s","type":"T1","id":"x20"}],"eventBusId":"bus"}`

	t.Run("sent twice without a time", func(t *testing.T) {
		l := &ebLog{}
		e, now := start(t, l)
		a := send(t, e, timeless)
		*now = now.Add(time.Millisecond)
		b := send(t, e, timeless)
		if a["time"] != "2026-12-06T10:15:08.233Z" || b["time"] != a["time"] {
			t.Fatalf("time %v, then %v: want the recorded 2026-12-06T10:15:08.233Z both times", a["time"], b["time"])
		}
		if b["id"] != "x20" || b["source"] != "s" || b["type"] != "T1" {
			t.Fatalf("resend's answer %v", b)
		}
		if got := l.eventTimes(); len(got) != 2 || got[0] != first.UnixMilli() || got[1] != first.UnixMilli() {
			t.Fatalf("appended event times %v, want the create and the close at %d", got, first.UnixMilli())
		}
	})

	t.Run("first with a time, then without", func(t *testing.T) {
		l := &ebLog{}
		e, _ := start(t, l)
		send(t, e, strings.Replace(timeless, `"id":"x20"`, `"id":"x20","time":"2025-03-25T21:04:41+08:00"`, 1))
		if b := send(t, e, timeless); b["time"] != "2025-03-25T13:04:41Z" {
			t.Fatalf("resend's time %v, want the recorded 2025-03-25T13:04:41Z", b["time"])
		}
	})

	t.Run("the first request's close failed", func(t *testing.T) {
		l := &ebLog{}
		// The first request: the create lands, the close is refused as a
		// broker away (503: the sender resends).
		e1 := echo.New()
		r1 := Register(e1, Deps{Tokens: fakeTokens{}, Appender: &failingClose{l}, Reader: l, Channels: ebChannels{}, MaxInFlight: 1,
			Now: func() time.Time { return first }})
		t.Cleanup(r1.Close)
		if rec := serve(e1, RouteEventBusNew, ebAuth, timeless); rec.Code != 503 {
			t.Fatalf("first request: %d %s", rec.Code, rec.Body)
		}
		e, now := start(t, l)
		*now = now.Add(time.Second)
		if b := send(t, e, timeless); b["time"] != "2026-12-06T10:15:08.233Z" {
			t.Fatalf("resend's time %v, want the recorded 2026-12-06T10:15:08.233Z", b["time"])
		}
		if got := l.eventTimes(); len(got) != 2 || got[1] != first.UnixMilli() {
			t.Fatalf("appended event times %v: want the close at the recorded %d", got, first.UnixMilli())
		}
	})
}

// failingClose is an ebLog whose closes are refused as a broker away.
type failingClose struct{ *ebLog }

func (f *failingClose) Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error) {
	if v.Op == ops.EventClose {
		return oplog.Result{}, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "broker down", RetryAfter: 1}
	}
	return f.ebLog.Append(ctx, v)
}
