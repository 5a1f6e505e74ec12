package streams

import (
	"testing"

	"github.com/pushgo/gateway/schemas/ops"
)

// ParseOpSubject reads back what OpSubject and MessagesSubject write, and refuses any other
// subject rather than answer a part of it.
func TestParseOpSubject(t *testing.T) {
	for _, kind := range []ops.Kind{ops.KindEvent, ops.KindThing, ops.KindMessage} {
		ch, k, id, ok := ParseOpSubject(OpSubject("3VDNK58JZ14ZV5ZZ19466GK25T", kind, "0123abcd"))
		if !ok || ch != "3VDNK58JZ14ZV5ZZ19466GK25T" || k != kind || id != "0123abcd" {
			t.Errorf("%s: got %q %q %q %v", kind, ch, k, id, ok)
		}
	}
	if ch, k, id, ok := ParseOpSubject(MessagesSubject("3VDNK58JZ14ZV5ZZ19466GK25T")); !ok || ch != "3VDNK58JZ14ZV5ZZ19466GK25T" || k != ops.KindMessage || id != "" {
		t.Errorf("messages subject: got %q %q %q %v", ch, k, id, ok)
	}
	for _, s := range []string{
		"", "pushgo.op.", "pushgo.op.ch", "pushgo.op.ch.event", "pushgo.op.ch.event.", "pushgo.op..message", "pushgo.op.ch.thing",
		"pushgo.op..event.id", "pushgo.op.ch..id", "pushgo.receipt.ch", "other.op.ch.event.id",
	} {
		if ch, k, id, ok := ParseOpSubject(s); ok {
			t.Errorf("%q parsed as %q %q %q", s, ch, k, id)
		}
	}
}
