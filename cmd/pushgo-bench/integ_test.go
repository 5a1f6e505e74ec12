package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/integrations/alertmanager"
	"github.com/pushgo/gateway/ingest/integrations/dynatrace"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// The integrations phases' bodies are what the integration contracts
// accept: Things of type HOST, Dynatrace reports with either selector, and
// Alertmanager payloads whose repeats are identical and whose revisions
// change every alert's content, with fingerprints distinct across groups.
func TestIntegrationBodies(t *testing.T) {
	now := time.Now().UnixMilli()
	b := newBodies(ids.NewChannelID(), "bench-password", 400)
	var tr ops.ThingRequest
	if aerr := wire.Decode(b.hostCreate(42, now), &tr); aerr != nil {
		t.Fatalf("host create: %v", aerr)
	}
	if _, aerr := ops.ValidateThing(ops.ThingCreate, &tr, now); aerr != nil {
		t.Fatalf("host create: %v", aerr)
	}
	if tr.Title == nil || *tr.Title != "host-42" || !strings.Contains(string(tr.Attrs), `"type":"HOST"`) {
		t.Fatalf("host create: title %v attrs %s", tr.Title, tr.Attrs)
	}

	id := ids.NewOpID()
	for _, c := range []struct {
		eventType string
		sel       dtSelector
		want      string
	}{
		{dtProblem, selEntityID, `entityId("` + id + `")`},
		{dtInfo, selEntityID, `entityId("` + id + `")`},
		{dtProblem, selEntityName, `type(HOST),entityName.equals(host-7)`},
	} {
		body := dtBody(nil, c.eventType, "bench problem", c.sel, 7, id, 99)
		req, vs, err := dynatrace.Decode(body)
		if err != nil || vs != nil {
			t.Fatalf("%s: %v %v", body, vs, err)
		}
		rep, vs := dynatrace.Validate(req, now)
		if vs != nil || rep.MetadataError != "" || !rep.TimestampsValid(now) {
			t.Fatalf("%s: %v %+v", body, vs, rep)
		}
		if rep.SelectorText != c.want || rep.Selector == nil || rep.Problem != (c.eventType == dtProblem) {
			t.Fatalf("%s: selector %q (want %q), problem %v", body, rep.SelectorText, c.want, rep.Problem)
		}
	}

	seen := map[string]bool{}
	for g := range 3 {
		grp := newAMGroup(12345, 1, g, 100)
		p1 := grp.amPayload(nil, 1)
		_, reps, aerr := alertmanager.Parse(p1, now)
		if aerr != nil {
			t.Fatalf("payload: %v", aerr)
		}
		if len(reps) != 100 {
			t.Fatalf("%d reports, want 100", len(reps))
		}
		for _, r := range reps {
			if r.Resolved || seen[r.Fingerprint] || len(r.Fingerprint) != 16 {
				t.Fatalf("report %q: resolved %v, seen %v", r.Fingerprint, r.Resolved, seen[r.Fingerprint])
			}
			seen[r.Fingerprint] = true
		}
		if again := grp.amPayload(nil, 1); !bytes.Equal(again, p1) {
			t.Fatal("a repeat of one revision differs")
		}
		_, reps2, aerr := alertmanager.Parse(grp.amPayload(nil, 2), now)
		if aerr != nil {
			t.Fatalf("payload rev 2: %v", aerr)
		}
		for i := range reps {
			if reps[i].Fingerprint != reps2[i].Fingerprint || fmt.Sprintf("%+v", reps[i].Content) == fmt.Sprintf("%+v", reps2[i].Content) {
				t.Fatalf("alert %d: a new revision must keep the fingerprint and change the content", i)
			}
		}
	}
}
