package fold

import (
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/ops"
)

var microEnv = []byte(`{"v":1,"op":"event.update","channel_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","op_id":"5f0c6d7e8a9b0c1d2e3f405162738495","entity_id":"a1b2c3d4e5f60718293a4b5c6d7e8f90","accepted_at":1713750012345,"body_hash":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","payload":{"event_id":"a1b2c3d4e5f60718293a4b5c6d7e8f90","status":"running","message":"step 17: copied 81234 files","severity":"normal","event_time":1713750012345,"attrs":{"step":17,"job":{"retries":3},"progress":{"done":17}}}}`)

func BenchmarkDecodeEnvelope(b *testing.B) {
	for b.Loop() {
		var env ops.Envelope
		if err := DecodeEnvelope(microEnv, &env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEnvelopeJSON(b *testing.B) {
	for b.Loop() {
		var env ops.Envelope
		if err := json.Unmarshal(microEnv, &env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyEvent(b *testing.B) {
	var env ops.Envelope
	_ = DecodeEnvelope(microEnv, &env)
	prev := &Event{ChannelID: env.ChannelID, EventID: env.EntityID, State: "ONGOING"}
	prev.Attrs, _ = MergePatch(nil, []byte(`{"host":"host-a1b2c3","job":{"kind":"backup","retries":0},"step":16,"progress":{"done":16}}`))
	for b.Loop() {
		if _, err := ApplyEvent(prev, &env, 5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	var env ops.Envelope
	_ = DecodeEnvelope(microEnv, &env)
	prev := &Event{ChannelID: env.ChannelID, EventID: env.EntityID, State: "ONGOING"}
	prev.Attrs, _ = MergePatch(nil, []byte(`{"host":"host-a1b2c3","job":{"kind":"backup","retries":0},"step":16,"progress":{"done":16}}`))
	e, _ := ApplyEvent(prev, &env, 5)
	var buf []byte
	for b.Loop() {
		buf = EncodeEvent(buf[:0], e)
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	var env ops.Envelope
	_ = DecodeEnvelope(microEnv, &env)
	prev := &Event{ChannelID: env.ChannelID, EventID: env.EntityID, State: "ONGOING"}
	prev.Attrs, _ = MergePatch(nil, []byte(`{"host":"host-a1b2c3","job":{"kind":"backup","retries":0},"step":16,"progress":{"done":16}}`))
	e, _ := ApplyEvent(prev, &env, 5)
	raw := EncodeEvent(nil, e)
	for b.Loop() {
		if _, err := DecodeEvent(raw); err != nil {
			b.Fatal(err)
		}
	}
}
