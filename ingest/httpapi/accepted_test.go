package httpapi

import (
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// The answers' data as the routes encoded them with apierr.EncodeOK.
type eventData struct {
	ChannelID string `json:"channel_id"`
	OpID      string `json:"op_id"`
	EventID   string `json:"event_id"`
	Accepted  bool   `json:"accepted"`
}

type thingData struct {
	ChannelID string `json:"channel_id"`
	OpID      string `json:"op_id"`
	ThingID   string `json:"thing_id"`
	Accepted  bool   `json:"accepted"`
}

type messageData struct {
	ChannelID string `json:"channel_id"`
	OpID      string `json:"op_id"`
	MessageID string `json:"message_id"`
	ThingID   string `json:"thing_id,omitempty"`
	Accepted  bool   `json:"accepted"`
}

// TestAcceptedAnswerIsEncodeOKs: an accepted write's answer, written by
// hand, is byte for byte the success envelope apierr.EncodeOK writes, for
// each kind, with op_ids that need escaping (quotes, backslashes, HTML
// characters, control characters, non-ASCII).
func TestAcceptedAnswerIsEncodeOKs(t *testing.T) {
	const ch, id = "3VDNK58JZ14ZV5ZZ19466GK25T", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	for _, opID := range []string{"op-20260422-001", `a"b\c`, "<tag>&amp;", "tab\there\x01", "é✓𝄞", ""} {
		for _, tc := range []struct {
			a    accepted
			data any
		}{
			{accepted{ChannelID: ch, OpID: opID, idKey: "event_id", ID: id}, eventData{ch, opID, id, true}},
			{accepted{ChannelID: ch, OpID: opID, idKey: "thing_id", ID: id}, thingData{ch, opID, id, true}},
			{accepted{ChannelID: ch, OpID: opID, idKey: "message_id", ID: id}, messageData{ch, opID, id, "", true}},
			{accepted{ChannelID: ch, OpID: opID, idKey: "message_id", ID: id, ThingID: "th-1"}, messageData{ch, opID, id, "th-1", true}},
		} {
			want, err := apierr.EncodeOK(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendAcceptedAnswer(nil, tc.a); string(got) != string(want) {
				t.Errorf("op_id %q:\n got %s\nwant %s", opID, got, want)
			}
		}
	}
}

func BenchmarkAcceptedAnswer(b *testing.B) {
	a := accepted{ChannelID: "3VDNK58JZ14ZV5ZZ19466GK25T", OpID: "op-20260422-001", idKey: "thing_id", ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}
	b.Run("by hand", func(b *testing.B) {
		for b.Loop() {
			_ = appendAcceptedAnswer(make([]byte, 0, 160), a)
		}
	})
	b.Run("EncodeOK", func(b *testing.B) {
		for b.Loop() {
			_, _ = apierr.EncodeOK(thingData{a.ChannelID, a.OpID, a.ID, true})
		}
	})
}
