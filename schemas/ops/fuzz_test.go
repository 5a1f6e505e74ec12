package ops

import (
	"net/url"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Seeds shared by f.Add and documented in testdata/fuzz: realistic bodies
// plus a few shapes near the rules' edges.
var (
	eventSeeds = []string{
		eventCreateBody, eventUpdateBody, eventCloseBody,
		seed(`{"channel_id":"YOUR_CHANNEL_ID","password":"YOUR_CHANNEL_PASSWORD","thing_id":"3b7fd2e87d7d4d6d9c7f3a318ac21f02","title":"Database lag","status":"open","message":"Replica lag exceeded 30 seconds","severity":"high","event_time":1713750000000,"started_at":1713750000000}`),
		set(eventCreateBody, "attrs", `{"a":{"b":null},"c":1.5}`, "metadata", `{" k ":" v "}`, "tags", `["a"," a"]`),
		set(eventUpdateBody, "attrs", `{"a":[1]}`),
	}
	thingSeeds = []string{
		thingCreateBody, thingUpdateBody, thingArchiveBody, thingDeleteBody,
		set(thingCreateBody, "title", `"Home NAS"`, "location_type", `"physical"`, "location_value", `"home/living-room"`, "attrs", `{"online":true}`),
		set(thingCreateBody, "external_ids", `{"GitHub":"x","aws":null}`, "location_type", `"geo"`, "location_value", `"37.5665,126.978"`),
		set(thingUpdateBody, "location_type", `"cloud"`, "location_value", `"aws:us-east-1:a"`, "primary_image", `"https://x/p.png"`),
	}
	messageSeeds = []string{
		messageBody,
		set(messageBody, "thing_id", `"nas-1"`, "occurred_at", `1713749000`, "url", `"https://nas.local"`, "ttl", `1713760000`),
		set(messageBody, "body", `"**disk 2** failed"`, "severity", `"critical"`, "metadata", `{"slot":2}`, "tags", `["nas"]`),
	}
	querySeeds = []string{
		"channel_id=" + cid + "&password=" + pw + "&title=Disk+failed",
		"channel_id=" + cid + "&password=" + pw + "&title=x&tags=a,b&metadata=%7B%22k%22%3A1%7D&ttl=1713760000",
		"channel_id=" + cid + "&title=x&title=y",
	}
)

// checkOutcome asserts what every validation must guarantee: a catalog 4xx
// on rejection, and on acceptance a hash that re-validation reproduces.
func checkOutcome(t *testing.T, v *Validated, err *apierr.Error, again func() (*Validated, *apierr.Error)) {
	t.Helper()
	if err != nil {
		if s := err.Status(); s < 400 || s > 499 || apierr.Lookup(err.Code).Code != err.Code {
			t.Fatalf("error %v has status %d or is not in the catalog", err, s)
		}
		return
	}
	if v == nil || v.Payload == nil || v.ChannelID == "" || len(v.BodyHash) != 64 {
		t.Fatalf("accepted with incomplete result %+v", v)
	}
	v2, err2 := again()
	if err2 != nil || v2.BodyHash != v.BodyHash {
		t.Fatalf("re-validation differs: %v", err2)
	}
}

func fuzzOps(f *testing.F, seeds []string, ops []Name) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, op := range ops {
			v, err := validateBody(op, body, testNow)
			checkOutcome(t, v, err, func() (*Validated, *apierr.Error) { return validateBody(op, body, testNow) })
		}
	})
}

func FuzzValidateEvent(f *testing.F) {
	fuzzOps(f, eventSeeds, []Name{EventCreate, EventUpdate, EventClose})
}

func FuzzValidateThing(f *testing.F) {
	fuzzOps(f, thingSeeds, []Name{ThingCreate, ThingUpdate, ThingArchive, ThingDelete})
}

func FuzzValidateMessage(f *testing.F) {
	fuzzOps(f, messageSeeds, []Name{MessageCreate})
}

func FuzzMessageQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// Like http.Request.URL.Query, keep what parses and drop the rest.
		q, _ := url.ParseQuery(raw)
		validate := func() (*Validated, *apierr.Error) {
			r, err := MessageRequestFromQuery(q)
			if err != nil {
				return nil, err
			}
			return ValidateMessage(r, testNow)
		}
		v, err := validate()
		checkOutcome(t, v, err, validate)
	})
}
