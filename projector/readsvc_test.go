package projector_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// counter reads a projector counter from its collectors.
func counter(t *testing.T, p *projector.Projector, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestAnswersOverMaxPayload: a Thing whose merged attrs grew past the
// broker's max_payload is answered in chunks of at most max_payload, in
// order, that join into the whole snapshot, to an asker that reads chunks;
// an asker that does not gets at once an error that says why (before, no
// answer at all: the asker timed out, and every retry too). A history page
// of large operations ends at the byte budget and says has_more.
func TestAnswersOverMaxPayload(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true})
	maxPayload := nc.MaxPayload()
	blob := func(i int) string { return strings.Repeat(fmt.Sprintf("%05d", i), 6000) } // 30,000 bytes
	var last uint64
	const updates = 40 // 1.2 MB of attrs
	for i := 0; i <= updates; i++ {
		now := int64(1713750000000 + i)
		env := ops.Envelope{V: 1, Op: ops.ThingUpdate, ChannelID: ch, OpID: fmt.Sprintf("op%03d", i), EntityID: "big", AcceptedAt: now}
		pl := ops.ThingPayload{ThingID: "big", ObservedAt: now}
		if i == 0 {
			env.Op, pl.Title = ops.ThingCreate, "big"
		} else {
			pl.Attrs = []byte(fmt.Sprintf(`{"k%02d":"%s"}`, i, blob(i)))
		}
		env.Payload, _ = json.Marshal(pl, json.Deterministic(true))
		last = publishSelectOp(t, js, ch, &env)
	}
	waitApplied(t, p, last)

	// Without Chunks: a clear error, at once.
	req, _ := json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "big"})
	m, err := nc.Request(reads.Subject(reads.ThingGet), req, 10*time.Second)
	if err != nil {
		t.Fatalf("no answer to an asker that does not read chunks: %v", err)
	}
	var resp reads.Response
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != apierr.InternalError || !strings.Contains(resp.Error, "max_payload") {
		t.Fatalf("answer %+v, want internal_error naming max_payload", resp)
	}

	// With Chunks: every chunk within max_payload, numbered in order.
	req, _ = json.Marshal(reads.Request{Route: reads.ThingGet, ChannelID: ch, ThingID: "big", Chunks: true})
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(reads.Subject(reads.ThingGet), inbox, req); err != nil {
		t.Fatal(err)
	}
	var joined []byte
	for i := 1; ; i++ {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if int64(len(m.Data)+len(reads.ChunkHeader)+32) > maxPayload {
			t.Fatalf("chunk %d of %d bytes, max_payload %d", i, len(m.Data), maxPayload)
		}
		ci, n, ok := reads.ParseChunk(m.Header.Get(reads.ChunkHeader))
		if !ok || ci != i || n < 2 {
			t.Fatalf("chunk %d has header %q", i, m.Header.Get(reads.ChunkHeader))
		}
		joined = append(joined, m.Data...)
		if ci == n {
			break
		}
	}
	resp = reads.Response{}
	if err := json.Unmarshal(joined, &resp); err != nil || resp.ErrorCode != "" {
		t.Fatalf("joined answer: %v %s", err, resp.Error)
	}
	var snap struct {
		Attrs   map[string]string `json:"attrs"`
		Version int               `json:"version"`
	}
	if err := json.Unmarshal(resp.Data, &snap, json.RejectUnknownMembers(false)); err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) <= int(maxPayload) || len(snap.Attrs) != updates || snap.Attrs["k17"] != blob(17) || snap.Version != updates+1 {
		t.Fatalf("snapshot of %d bytes: %d attrs, version %d", len(resp.Data), len(snap.Attrs), snap.Version)
	}
	if got := counter(t, p, "pushgo_projector_read_answers_chunked_total"); got != 1 {
		t.Fatalf("chunked answers counted %v", got)
	}
	if got := counter(t, p, "pushgo_projector_read_answers_refused_total"); got != 1 {
		t.Fatalf("refused answers counted %v", got)
	}

	// History at the largest limit: the page ends within the budget.
	req, _ = json.Marshal(reads.Request{Route: reads.ChannelHistory, ChannelID: ch, Limit: reads.MaxLimit})
	m, err = nc.Request(reads.Subject(reads.ChannelHistory), req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp = reads.Response{}
	var h reads.HistoryData
	if err := json.Unmarshal(m.Data, &resp); err != nil || json.Unmarshal(resp.Data, &h) != nil {
		t.Fatalf("history answer %.200s", m.Data)
	}
	size := 0
	for _, it := range h.Items {
		size += len(it) + 1
	}
	if !h.HasMore || len(h.Items) >= updates || size > reads.PageBytes(maxPayload) || len(m.Data) > int(maxPayload) {
		t.Fatalf("history page: %d items, %d bytes, has_more %v", len(h.Items), size, h.HasMore)
	}
	if !bytes.Contains(h.Items[len(h.Items)-1], []byte(fmt.Sprintf(`"seq":%d`, h.NextAfter))) {
		t.Fatalf("next_after %d is not the page's last item", h.NextAfter)
	}
	if got := counter(t, p, "pushgo_projector_read_pages_cut_total"); got != 1 {
		t.Fatalf("pages cut counted %v", got)
	}
}
