package ops

import (
	"fmt"
	"sync"
	"testing"

	"github.com/go-json-experiment/json"
)

// TestObjectValidationConcurrent validates requests whose attrs, metadata
// and external_ids (each read by a pooled decoder, decodeObject) are valid
// or refused at different members, from several goroutines at once, and
// requires each outcome to be the one validating it alone gives: a decoder
// reused by another request must carry nothing of the last one, neither a
// member name seen (duplicate detection) nor bytes read.
func TestObjectValidationConcurrent(t *testing.T) {
	bodies := []struct {
		op   Name
		body string
	}{
		{EventCreate, with(eventCreateBody, "attrs", `{"cpu":91.5,"host":"web-1","labels":{"job":"node","up":true},"gone":null}`)},
		{EventCreate, with(eventCreateBody, "attrs", `{"a":1,"b":{"c":[1]}}`)},
		{EventCreate, with(eventCreateBody, "attrs", `{"a":1,"b":{"c":{"d":1}}}`)},
		{EventCreate, with(eventCreateBody, "attrs", `{"a":1,"big":1e999}`)},
		{EventCreate, with(eventCreateBody, "attrs", `{"host":"web-1","host":"web-2"}`)},
		{EventCreate, with(eventCreateBody, "attrs", `{"labels":{"job":"node","job":"api"}}`)},
		{EventUpdate, with(with(eventUpdateBody, "attrs", `{"x":"y"}`), "metadata", `{"team":"sre","tier":"1"}`)},
		{EventUpdate, with(eventUpdateBody, "metadata", `{"team":"sre","team":"ops"}`)},
		{ThingCreate, with(with(thingCreateBody, "attrs", `{"rack":"r1"}`), "external_ids", `{"github":"nas","jira":"NAS-1"}`)},
		{ThingCreate, with(thingCreateBody, "external_ids", `{"GitHub":"a","github":"b"}`)},
		{ThingUpdate, with(thingUpdateBody, "attrs", `{"temp":21.5,"host":"web-1","labels":{"job":"node","job":"api"}}`)},
		{MessageCreate, with(messageBody, "metadata", `{"k":"v","n":"1"}`)},
	}
	outcome := func(i int) string {
		v, err := validateBody(bodies[i].op, []byte(bodies[i].body), testNow)
		if err != nil {
			return fmt.Sprintf("refused %s: %s", err.Code, err.Detail)
		}
		p, merr := json.Marshal(v.Payload, json.Deterministic(true))
		if merr != nil {
			return "payload: " + merr.Error()
		}
		return "accepted " + v.BodyHash + " " + string(p)
	}
	want := make([]string, len(bodies))
	refused := 0
	for i := range bodies {
		want[i] = outcome(i)
		if want[i][:7] == "refused" {
			refused++
		}
	}
	if refused < 5 || refused == len(bodies) {
		t.Fatalf("the cases should mix accepted and refused requests: %d of %d refused\n%v", refused, len(bodies), want)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 300 {
				i := (g*7 + n*5) % len(bodies)
				if got := outcome(i); got != want[i] {
					t.Errorf("body %d validated concurrently: %s\nalone: %s", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

// with adds member name, raw as written (a duplicate member name too),
// to the JSON object body.
func with(body, name, raw string) string {
	return body[:len(body)-1] + `,"` + name + `":` + raw + "}"
}
