package timeouts_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/ingest/timeouts"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

// dueList answers DeadlinesDue from a fixed list in deadline order, a page
// of Limit after DueAfter, as the projection does.
type dueList struct{ due []reads.DueEvent }

func (l *dueList) Read(_ context.Context, req *reads.Request) (jsontext.Value, *apierr.Error) {
	i := 0
	if req.DueAfter != nil {
		i = slices.IndexFunc(l.due, func(d reads.DueEvent) bool { return d.EventID == req.DueAfter.EventID }) + 1
	}
	page := l.due[i:min(i+req.Limit, len(l.due))]
	b, _ := json.Marshal(reads.DueData{Items: page})
	return b, nil
}

// refusing appends every close but those of the events it refuses for
// good (a deleted channel), and records what it was asked.
type refusing struct {
	mu     sync.Mutex
	refuse map[string]bool
	asked  []string
}

func (a *refusing) Append(_ context.Context, v *ops.Validated) (oplog.Result, *apierr.Error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, v.EntityID)
	if a.refuse[v.EntityID] {
		return oplog.Result{}, apierr.New(apierr.ChannelNotFound)
	}
	return oplog.Result{EntityID: v.EntityID}, nil
}

// TestScanGoesPastEventsItCannotClose: a full page of due events that
// cannot be closed does not hold back the ones due after them: the scan
// reads on, a page after the last one's last event (it read the same
// first page again at every tick, and the later deadlines were never met).
func TestScanGoesPastEventsItCannotClose(t *testing.T) {
	var due []reads.DueEvent
	for i, id := range []string{"stuck1", "stuck2", "stuck3", "stuck4", "due5", "due6", "due7"} {
		due = append(due, reads.DueEvent{ChannelID: ch, EventID: id, Deadline: int64(1000 + i), Severity: "normal", LastSeq: uint64(i + 1)})
	}
	app := &refusing{refuse: map[string]bool{"stuck1": true, "stuck2": true, "stuck3": true, "stuck4": true}}
	c := timeouts.Start(&dueList{due: due}, app, timeouts.Options{Interval: time.Hour, Batch: 2, Now: func() time.Time { return time.UnixMilli(10_000) }})
	defer c.Close()
	n, closed := c.Scan(context.Background())
	if n != len(due) || closed != 3 {
		t.Fatalf("scan: %d due, %d closed; want %d due, 3 closed", n, closed, len(due))
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if want := []string{"stuck1", "stuck2", "stuck3", "stuck4", "due5", "due6", "due7"}; !slices.Equal(app.asked, want) {
		t.Fatalf("closes asked %v, want %v", app.asked, want)
	}
}

// firstPageOnly answers every DeadlinesDue with its first page, as a
// projector that does not know DueAfter (an older version) does.
type firstPageOnly struct{ dueList }

func (l *firstPageOnly) Read(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error) {
	first := *req
	first.DueAfter = nil
	return l.dueList.Read(ctx, &first)
}

// TestScanEndsWhenPagesDoNotMove: a projector answering the first page
// again whatever the cursor (one older than DueAfter) ends the scan after
// that page came twice, rather than looping for ever.
func TestScanEndsWhenPagesDoNotMove(t *testing.T) {
	var due []reads.DueEvent
	for i, id := range []string{"a", "b", "c"} {
		due = append(due, reads.DueEvent{ChannelID: ch, EventID: id, Deadline: int64(1000 + i), Severity: "normal", LastSeq: uint64(i + 1)})
	}
	app := &refusing{refuse: map[string]bool{"a": true, "b": true}}
	c := timeouts.Start(&firstPageOnly{dueList{due: due}}, app, timeouts.Options{Interval: time.Hour, Batch: 2, Now: func() time.Time { return time.UnixMilli(10_000) }})
	defer c.Close()
	if n, _ := c.Scan(context.Background()); n != 4 {
		t.Fatalf("scan over a projector that ignores the cursor: %d due, want the first page twice (4)", n)
	}
}
