package ops

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// TestBodyHash: equal for requests that differ only in presentation
// (whitespace, key order, credentials, op_id, channel_id spelling, seconds
// vs ms), different whenever the operation differs.
func TestBodyHash(t *testing.T) {
	ec := set(eventCreateBody, "attrs", `{"a":1,"b":{"x":true}}`, "metadata", `{"k":"v"}`, "tags", `["a"]`)
	tc := set(thingCreateBody, "external_ids", `{"a":"1","b":"2"}`)
	same := []struct {
		name     string
		op       Name
		a, b     string
		sameHash bool
	}{
		{"identical", EventCreate, ec, ec, true},
		{"whitespace", EventCreate, ec, strings.ReplaceAll(strings.ReplaceAll(ec, ",", " ,\n "), ":", " : "), true},
		{"member order", EventCreate, ec, `{"title":"Deploy","metadata":{"k":"v"},"attrs":{"b":{"x":true},"a":1},"tags":["a"],"status":"running","message":"started","severity":"normal","event_time":1713750000000,"channel_id":"` + cid + `","password":"` + pw + `"}`, true},
		{"nested key order", EventCreate, ec, set(ec, "attrs", `{"b":{"x":true},"a":1}`), true},
		{"number spelling", EventCreate, ec, set(ec, "attrs", `{"a":1.0,"b":{"x":true}}`), true},
		{"password", EventCreate, ec, set(ec, "password", `"another-password"`), true},
		{"op_id", EventCreate, ec, set(ec, "op_id", `"op-1"`), true},
		{"channel_id case", EventCreate, ec, set(ec, "channel_id", q(strings.ToLower(cid))), true},
		{"channel_id O for 0", EventCreate, ec, set(ec, "channel_id", q("O"+cid[1:])), true},
		{"seconds vs ms", EventCreate, ec, set(ec, "event_time", `1713750000`), true},
		{"digit string vs number", EventCreate, ec, set(ec, "event_time", `"1713750000000"`), true},
		{"attrs null vs absent", EventCreate, eventCreateBody, set(eventCreateBody, "attrs", `null`), true},
		{"external_ids order", ThingCreate, tc, set(tc, "external_ids", `{"b":"2","a":"1"}`), true},

		{"title", EventCreate, ec, set(ec, "title", `"Deploy!"`), false},
		{"status", EventCreate, ec, set(ec, "status", `"open"`), false},
		{"severity", EventCreate, ec, set(ec, "severity", `"low"`), false},
		{"event_time", EventCreate, ec, set(ec, "event_time", `1713750000001`), false},
		{"started_at given vs default", EventCreate, ec, set(ec, "started_at", `1713750000000`), false},
		{"description", EventCreate, ec, set(ec, "description", `"d"`), false},
		{"attrs value", EventCreate, ec, set(ec, "attrs", `{"a":2,"b":{"x":true}}`), false},
		{"big ints stay distinct", EventCreate, set(ec, "attrs", `{"a":9007199254740993}`), set(ec, "attrs", `{"a":9007199254740992}`), false},
		{"metadata", EventCreate, ec, set(ec, "metadata", `{"k":"w"}`), false},
		{"tags absent vs empty", EventCreate, eventCreateBody, set(eventCreateBody, "tags", `[]`), false},
		{"tags order", EventCreate, set(ec, "tags", `["a","b"]`), set(ec, "tags", `["b","a"]`), false},
		{"thing_id", EventCreate, ec, set(ec, "thing_id", `"nas-1"`), false},
		{"ciphertext", EventCreate, ec, set(ec, "ciphertext", `"x"`), false},
		{"channel", EventCreate, ec, set(ec, "channel_id", `"01ARZ3NDEKTSV4RRFFQ69G5FAW"`), false},
		{"external_ids value", ThingCreate, tc, set(tc, "external_ids", `{"a":"1","b":"3"}`), false},
		{"observed_at", ThingCreate, tc, set(tc, "observed_at", `1713750000001`), false},
		{"message title", MessageCreate, messageBody, set(messageBody, "title", `"Disk ok"`), false},
		{"message ttl", MessageCreate, set(messageBody, "ttl", `1713760000000`), set(messageBody, "ttl", `1713760000001`), false},
	}
	for _, c := range same {
		t.Run(c.name, func(t *testing.T) {
			va, err := validateBody(c.op, []byte(c.a), testNow)
			if err != nil {
				t.Fatalf("a: %v", err)
			}
			vb, err := validateBody(c.op, []byte(c.b), testNow)
			if err != nil {
				t.Fatalf("b: %v", err)
			}
			if (va.BodyHash == vb.BodyHash) != c.sameHash {
				t.Errorf("hashes equal = %v, want %v", va.BodyHash == vb.BodyHash, c.sameHash)
			}
			if len(va.BodyHash) != 64 {
				t.Errorf("hash %q is not hex SHA-256", va.BodyHash)
			}
		})
	}
}

// TestBodyHashIncludesOp: the same body on two routes is two operations.
func TestBodyHashIncludesOp(t *testing.T) {
	body := []byte(eventUpdateBody)
	u, err1 := validateBody(EventUpdate, body, testNow)
	c, err2 := validateBody(EventClose, body, testNow)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if u.BodyHash == c.BodyHash {
		t.Error("update and close of the same body hash equal")
	}
}

// TestBodyHashIgnoresClock: a message retried later (occurred_at defaulted
// to a different now) is still the same body.
func TestBodyHashIgnoresClock(t *testing.T) {
	a, _ := validateBody(MessageCreate, []byte(messageBody), testNow)
	b, _ := validateBody(MessageCreate, []byte(messageBody), testNow+60_000)
	if a.BodyHash != b.BodyHash {
		t.Error("hash depends on the clock")
	}
}

// TestContentBound: an operation whose content is over MaxContentBytes is
// operation_too_large (413) on every kind, so no route appends what the
// broker's 1 MiB message limit would refuse; one well under it passes.
func TestContentBound(t *testing.T) {
	attrs := func(members int) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range members {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"k` + strconv.Itoa(i) + `":"` + strings.Repeat("v", 1000) + `"`)
		}
		b.WriteByte('}')
		return b.String()
	}
	for _, op := range []Name{EventCreate, EventUpdate, ThingCreate, ThingUpdate} {
		if _, aerr := validateBody(op, []byte(set(baseBody(op), "attrs", attrs(400))), testNow); aerr != nil {
			t.Errorf("%s with 400 KiB of attrs: %v", op, aerr)
		}
		_, aerr := validateBody(op, []byte(set(baseBody(op), "attrs", attrs(600))), testNow)
		if aerr == nil || aerr.Code != apierr.OperationTooLarge || aerr.Status() != 413 {
			t.Errorf("%s with 600 KiB of attrs: %v, want %s", op, aerr, apierr.OperationTooLarge)
		}
	}
}

// TestContentHeadroom: with WithContentHeadroom(n), a content within n
// bytes of the bound is refused; without, accepted (the check a report's
// translation makes before the tracker knows the event_id to add).
func TestContentHeadroom(t *testing.T) {
	body := func(n int) []byte {
		return []byte(set(eventCreateBody, "attrs", `{"a":"`+strings.Repeat("v", n)+`"}`))
	}
	lo, hi := 0, MaxContentBytes
	for hi-lo > 1 { // the largest attrs value accepted
		mid := (lo + hi) / 2
		if _, aerr := validateBody(EventCreate, body(mid), testNow); aerr == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	if _, aerr := validateBody(EventCreate, body(lo+1), testNow); aerr == nil || aerr.Code != apierr.OperationTooLarge {
		t.Fatalf("one byte more: %v", aerr)
	}
	withHeadroom := func(n int) *apierr.Error {
		var r EventRequest
		if err := wire.Decode(body(n), &r); err != nil {
			t.Fatal(err)
		}
		_, aerr := ValidateEvent(EventCreate, &r, testNow, WithContentHeadroom(256))
		return aerr
	}
	if aerr := withHeadroom(lo - 255); aerr == nil || aerr.Code != apierr.OperationTooLarge {
		t.Fatalf("within the headroom: %v", aerr)
	}
	if aerr := withHeadroom(lo - 256); aerr != nil {
		t.Fatalf("outside the headroom: %v", aerr)
	}
}

// TestBodyHashIsStable: the hash of a body is what earlier versions wrote
// to the log, so a client's retry after an upgrade is still found the same
// operation (idempotency), and a pooled buffer reused by many requests
// changes nothing: each body hashes the same after others of other sizes.
func TestBodyHashIsStable(t *testing.T) {
	want := []struct {
		op   Name
		body string
		hash string
	}{
		{EventCreate, eventCreateBody, "14716303af2b3997e3196d29662f44f7264c0097976c3591671fcb3cfe016674"},
		{ThingCreate, thingCreateBody, "f117fefa79b3e120fe64cf7e1d34c09dfc9329fadb8964c244ae670eaadd1893"},
		{MessageCreate, messageBody, "ee6d35ea3ca1e08dea5dc167713bc799ffd537c879be92628123a84d99e1392c"},
	}
	big := set(eventCreateBody, "attrs", `{"blob":"`+strings.Repeat("x", 70<<10)+`"}`)
	for round := range 3 {
		for _, w := range want {
			v, err := validateBody(w.op, []byte(w.body), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if v.BodyHash != w.hash {
				t.Fatalf("round %d: %s hashes to %s, want %s (the hash earlier versions logged)", round, w.op, v.BodyHash, w.hash)
			}
			if _, err := validateBody(EventCreate, []byte(big), testNow); err != nil {
				t.Fatal(err)
			}
		}
	}
}
