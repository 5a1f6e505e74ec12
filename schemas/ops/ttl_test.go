package ops

import "testing"

func TestMessageTTL(t *testing.T) {
	for _, c := range []struct {
		payload string
		ttl     int64
		ok      bool
	}{
		{`{"title":"x","ttl":1713750060000}`, 1713750060000, true},
		{`{"title":"x"}`, 0, false},
		// A ttl in the metadata is not the message's.
		{`{"metadata":{"ttl":"5"},"title":"x"}`, 0, false},
		{`{"metadata":{"ttl":5},"title":"x","ttl":7}`, 7, true},
		{`{"title":"\"ttl\":3"}`, 0, false},
		{`not json`, 0, false},
	} {
		ttl, ok := MessageTTL([]byte(c.payload))
		if ttl != c.ttl || ok != c.ok {
			t.Errorf("MessageTTL(%s) = %d, %v; want %d, %v", c.payload, ttl, ok, c.ttl, c.ok)
		}
	}
	env := `{"v":1,"op":"message.create","channel_id":"C","op_id":"o","entity_id":"m","accepted_at":1,"body_hash":"h","payload":{"title":"x","ttl":99}}`
	if ttl, ok := EnvelopeMessageTTL([]byte(env)); ttl != 99 || !ok {
		t.Errorf("EnvelopeMessageTTL = %d, %v; want 99, true", ttl, ok)
	}
	if _, ok := EnvelopeMessageTTL([]byte(`{"v":1,"op":"event.update","payload":{"attrs":{"n":1}}}`)); ok {
		t.Error("an event update has no ttl")
	}
}
