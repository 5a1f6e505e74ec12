package main

import (
	"testing"
	"time"

	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// The measured bodies must be what the gateway accepts, and about the
// requested size.
func TestBodiesAreValidAndSized(t *testing.T) {
	for _, size := range []int{300, 400, 1000} {
		b := newBodies(ids.NewChannelID(), "bench-password", size)
		now := time.Now().UnixMilli()
		for n := uint64(0); n < 2000; n += 7 {
			ev := b.eventUpdate(nil, ids.NewOpID(), now+int64(n), n)
			var er ops.EventRequest
			if aerr := wire.Decode(ev, &er); aerr != nil {
				t.Fatalf("event body %s: %v", ev, aerr)
			}
			if _, aerr := ops.ValidateEvent(ops.EventUpdate, &er, now); aerr != nil {
				t.Fatalf("event body %s: %v", ev, aerr)
			}
			th := b.thingUpdate(nil, ids.NewOpID(), now+int64(n), n)
			var tr ops.ThingRequest
			if aerr := wire.Decode(th, &tr); aerr != nil {
				t.Fatalf("thing body %s: %v", th, aerr)
			}
			if _, aerr := ops.ValidateThing(ops.ThingUpdate, &tr, now); aerr != nil {
				t.Fatalf("thing body %s: %v", th, aerr)
			}
			for _, body := range [][]byte{ev, th} {
				if d := len(body) - size; d < -10 || d > 10 {
					t.Fatalf("size %d: body is %d bytes", size, len(body))
				}
			}
		}
	}
	b := newBodies(ids.NewChannelID(), "bench-password", 400)
	now := time.Now().UnixMilli()
	var er ops.EventRequest
	if aerr := wire.Decode(b.eventCreate(3, now), &er); aerr != nil {
		t.Fatalf("event create: %v", aerr)
	}
	if _, aerr := ops.ValidateEvent(ops.EventCreate, &er, now); aerr != nil {
		t.Fatalf("event create: %v", aerr)
	}
	var tr ops.ThingRequest
	if aerr := wire.Decode(b.thingCreate(3, now), &tr); aerr != nil {
		t.Fatalf("thing create: %v", aerr)
	}
	if _, aerr := ops.ValidateThing(ops.ThingCreate, &tr, now); aerr != nil {
		t.Fatalf("thing create: %v", aerr)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Millisecond
	}
	if p := percentile(s, 0.5); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := percentile(s, 0.99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := percentile(nil, 0.99); p != 0 {
		t.Errorf("empty p99 = %s", p)
	}
	m := median([]result{{rate: 3, p99: 9, errors: 1}, {rate: 1, p99: 7}, {rate: 2, p99: 8, errors: 2}})
	if m.rate != 2 || m.p99 != 8 || m.errors != 3 {
		t.Errorf("median = %+v", m)
	}
}
