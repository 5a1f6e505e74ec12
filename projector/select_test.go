package projector_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestThingsSelect: Things folded from the log are selectable by an
// entitySelector through the read route, updates move them between
// selections, and a bad selector is the catalog's invalid_entity_selector.
func TestThingsSelect(t *testing.T) {
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true})
	n := 0
	put := func(op ops.Name, id, title, attrs string) uint64 {
		t.Helper()
		n++
		now := int64(1713750000000 + n)
		env := ops.Envelope{V: 1, Op: op, ChannelID: ch, OpID: fmt.Sprintf("op%03d", n), EntityID: id, AcceptedAt: now}
		pl := ops.ThingPayload{ThingID: id, Title: title, ObservedAt: now}
		if attrs != "" {
			pl.Attrs = []byte(attrs)
		}
		env.Payload, _ = json.Marshal(pl, json.Deterministic(true))
		return publishSelectOp(t, js, ch, &env)
	}
	put(ops.ThingCreate, "hg1", "cloud-burst-hosts", `{"type":"HOST_GROUP"}`)
	put(ops.ThingCreate, "h1", "burst-01", `{"type":"HOST","relationships":{"isInstanceOf":"hg1"}}`)
	put(ops.ThingCreate, "h2", "burst-02", `{"type":"HOST","relationships":{"isInstanceOf":"hg1"}}`)
	put(ops.ThingCreate, "h3", "steady-01", `{"type":"HOST"}`)
	last := put(ops.ThingCreate, "s1", "BookingService", `{"type":"SERVICE","relationships":{"runsOn":"h1"}}`)
	waitApplied(t, p, last)

	sel := func(selector string) (reads.SelectData, *apierr.Error) {
		t.Helper()
		raw, aerr := p.Read(&reads.Request{Route: reads.ThingsSelect, ChannelID: ch, Selector: selector})
		var d reads.SelectData
		if aerr == nil {
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
		}
		return d, aerr
	}
	for _, tc := range []struct {
		selector string
		want     reads.SelectData
	}{
		{`type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP),entityName(cloud-burst-hosts))`, reads.SelectData{ThingIDs: []string{"h1", "h2"}}},
		{`type(SERVICE),entityName.equals(BookingService)`, reads.SelectData{ThingIDs: []string{"s1"}}},
		{`type(HOST),toRelationships.runsOn(type(SERVICE))`, reads.SelectData{ThingIDs: []string{"h1"}}},
		{`type(DATABASE)`, reads.SelectData{ThingIDs: []string{}, UnknownTypes: []string{"DATABASE"}}},
	} {
		got, aerr := sel(tc.selector)
		if aerr != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v %v, want %+v", tc.selector, got, aerr, tc.want)
		}
	}

	// Asked again with nothing changed, a selection is answered from the
	// selection cache, and so after an update of attrs no selector reads.
	cached := selections(t, p, "cached")
	last = put(ops.ThingUpdate, "s1", "", `{"version":"2.4.1"}`)
	waitApplied(t, p, last)
	if got, aerr := sel(`type(SERVICE),entityName.equals(BookingService)`); aerr != nil || !reflect.DeepEqual(got.ThingIDs, []string{"s1"}) {
		t.Errorf("asked again: %+v %v", got, aerr)
	}
	if got := selections(t, p, "cached"); got != cached+1 {
		t.Errorf("cached selections counted %v, want %v", got, cached+1)
	}

	// h2 leaves the group and h1 is archived: neither is selected now,
	// by a selector asked before (cached then) or a new one.
	put(ops.ThingUpdate, "h2", "", `{"relationships":{"isInstanceOf":null}}`)
	last = put(ops.ThingArchive, "h1", "", "")
	waitApplied(t, p, last)
	for _, selector := range []string{`type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP))`,
		`type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP),entityName(cloud-burst-hosts))`} {
		if got, aerr := sel(selector); aerr != nil || len(got.ThingIDs) != 0 {
			t.Errorf("after the updates, %s: %+v %v", selector, got, aerr)
		}
	}

	if _, aerr := sel(`type(HOST),mzName("prod")`); aerr == nil || aerr.Code != apierr.InvalidEntitySelector ||
		aerr.Detail != `entitySelector: criterion "mzName" is not supported; supported: type, entityId, entityName, entityName.equals, entityName.startsWith, entityName.in, caseSensitive, tag, not, fromRelationship(s).<rel>, toRelationship(s).<rel>` {
		t.Errorf("unsupported criterion: %v", aerr)
	}

	// Over NATS, as ingest asks.
	req, _ := json.Marshal(reads.Request{Route: reads.ThingsSelect, ChannelID: ch, Selector: `entityId(h3,h1)`, MinSeq: last})
	m, err := nc.Request(reads.Subject(reads.ThingsSelect), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var resp reads.Response
	var d reads.SelectData
	if err := json.Unmarshal(m.Data, &resp); err != nil || resp.ErrorCode != "" {
		t.Fatalf("over NATS: %s (%v)", m.Data, err)
	}
	if err := json.Unmarshal(resp.Data, &d); err != nil || !reflect.DeepEqual(d, reads.SelectData{ThingIDs: []string{"h3"}}) {
		t.Fatalf("over NATS: %s (%v)", m.Data, err)
	}
}

// selections is the count of ThingsSelect answers by answer (cached or
// evaluated) on p's /metrics.
func selections(t *testing.T, p *projector.Projector, answer string) float64 {
	t.Helper()
	return counter(t, p, "pushgo_projector_selections_total", "answer="+answer)
}

func publishSelectOp(t *testing.T, js jetstream.JetStream, ch string, env *ops.Envelope) uint64 {
	t.Helper()
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(context.Background(), streams.OpSubject(ch, env.Op.Kind(), env.EntityID), data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}
