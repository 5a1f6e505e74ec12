package oplog

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// envelopeCases are envelopes with the strings a client controls (op_id)
// or the gateway writes, and the escapes json.Marshal makes.
var envelopeCases = []ops.Envelope{
	{V: 1, Op: ops.EventUpdate, ChannelID: "3VDNK58JZ14ZV5ZZ19466GK25T", OpID: "op-20260422-001", EntityID: "0123456789abcdef0123456789abcdef",
		AcceptedAt: 1_713_750_000_000, BodyHash: "sha256:abc", Payload: []byte(`{"status":"running","attrs":{"b":1,"a":[true,null,"x"]}}`)},
	{V: 1, Op: ops.MessageCreate, ChannelID: "c", OpID: `quote " backslash \ slash / <html> & 'single'`, EntityID: "e", Payload: []byte(`{}`)},
	{V: 1, Op: ops.ThingCreate, ChannelID: "c", OpID: "tab\tnewline\nnul\x00 del\x7f bell\a", EntityID: "e", AcceptedAt: -1, Payload: []byte(`"s"`)},
	{V: 1, Op: ops.ThingDelete, ChannelID: "c", OpID: "ünïcødé ✓ \u2028 \u2029 😀", EntityID: "e", Payload: []byte(`[1,2.5,-3e7]`)},
	{V: 0, Payload: []byte(`null`)},
}

// TestEnvelopeEncodingIsTheJSONPackages: appendEnvelope writes what
// json.Marshal writes of the same envelope, byte for byte, so the log is
// the same whichever wrote it; and an op_id that is not UTF-8 is refused
// by both.
func TestEnvelopeEncodingIsTheJSONPackages(t *testing.T) {
	for i, e := range envelopeCases {
		checkEnvelope(t, i, e)
	}
	bad := envelopeCases[0]
	bad.OpID = "bad \xff utf-8"
	if _, err := json.Marshal(bad); err == nil {
		t.Fatal("json.Marshal took invalid UTF-8")
	}
	if _, err := appendEnvelope(nil, bad); err == nil {
		t.Fatal("appendEnvelope took invalid UTF-8")
	}
}

func checkEnvelope(t *testing.T, i int, e ops.Envelope) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := appendEnvelope(nil, e)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("case %d: json.Marshal error %v, appendEnvelope error %v", i, werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
	}
}

func FuzzEnvelopeEncoding(f *testing.F) {
	for _, e := range envelopeCases {
		f.Add(string(e.Op), e.ChannelID, e.OpID, e.EntityID, e.BodyHash, e.AcceptedAt, string(e.Payload))
	}
	f.Fuzz(func(t *testing.T, op, channelID, opID, entityID, bodyHash string, acceptedAt int64, message string) {
		// The payload as the writer makes it: json.Marshal of a value.
		payload, err := json.Marshal(map[string]any{"message": message, "attrs": map[string]any{opID: acceptedAt}}, json.Deterministic(true))
		if err != nil {
			return // not UTF-8: the writer refuses it before
		}
		checkEnvelope(t, 0, ops.Envelope{V: ops.EnvelopeVersion, Op: ops.Name(op), ChannelID: channelID, OpID: opID, EntityID: entityID,
			AcceptedAt: acceptedAt, BodyHash: bodyHash, Payload: payload})
	})
}

// TestPubAckAnswers: the broker's answers to a publish read as
// jetstream.PublishMsg reads them: the PubAck, the broker's refusal as a
// *jetstream.APIError (which cas.Lost and storage.Full recognise), or
// ErrInvalidJSAck.
func TestPubAckAnswers(t *testing.T) {
	for _, c := range []struct {
		in      string
		ack     *jetstream.PubAck
		errCode jetstream.ErrorCode
		invalid bool
	}{
		{in: `{"stream":"PUSHGO_OPS","seq":42}`, ack: &jetstream.PubAck{Stream: "PUSHGO_OPS", Sequence: 42}},
		{in: `{"stream":"PUSHGO_OPS","seq":7,"duplicate":true}`, ack: &jetstream.PubAck{Stream: "PUSHGO_OPS", Sequence: 7, Duplicate: true}},
		{in: ` { "stream" : "S" , "domain":"hub", "seq" : 18446744073709551615 } `, ack: &jetstream.PubAck{Stream: "S", Domain: "hub", Sequence: 18446744073709551615}},
		{in: `{"stream":"S","seq":1,"batch":"b1","count":3}`, ack: &jetstream.PubAck{Stream: "S", Sequence: 1}},
		{in: `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 41"}}`, errCode: jetstream.JSErrCodeStreamWrongLastSequence},
		{in: `{"stream":"S","error":{"code":503,"err_code":10023,"description":"insufficient resources"}}`, errCode: 10023},
		{in: `{"stream":"","seq":1}`, invalid: true},
		{in: `{"seq":1}`, invalid: true},
		{in: `not json`, invalid: true},
		{in: ``, invalid: true},
		{in: `{"stream":"S","seq":1}x`, invalid: true},
		{in: `{"stream":"S","seq":"1"}`, invalid: true},
	} {
		ack, err := parsePubAck([]byte(c.in))
		var apiErr *jetstream.APIError
		switch {
		case c.ack != nil:
			if err != nil || *ack != *c.ack {
				t.Errorf("%s: %+v, %v; want %+v", c.in, ack, err, c.ack)
			}
		case c.errCode != 0:
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != c.errCode {
				t.Errorf("%s: %+v, %v; want API error %d", c.in, ack, err, c.errCode)
			}
		case c.invalid:
			if !errors.Is(err, jetstream.ErrInvalidJSAck) {
				t.Errorf("%s: %+v, %v; want ErrInvalidJSAck", c.in, ack, err)
			}
		}
	}
}

// FuzzPubAck: whenever the scan reads an answer itself, the json package
// reads the same PubAck from it.
func FuzzPubAck(f *testing.F) {
	for _, s := range []string{`{"stream":"PUSHGO_OPS","seq":42}`, `{"stream":"S","seq":7,"duplicate":true,"domain":"d","val":"v"}`,
		`{"stream":"S","stream":"T","seq":1}`, `{"stream":"S","seq":01}`, `{"stream":"S","seq":1e3}`, `{"stream":"S","Seq":5,"seq":1}`,
		`{"error":{"code":400,"err_code":10071}}`, `{"stream":"S","seq":1,"duplicate":false,"x":true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ack, ok := scanPubAck(b)
		if !ok {
			return
		}
		var r pubAckResponse
		if err := json.Unmarshal(b, &r); err != nil || r.Error != nil {
			t.Fatalf("%q: scanned %+v; the json package: %v, %+v", b, ack, err, r.Error)
		}
		if r.PubAck != *ack {
			t.Fatalf("%q: scanned %+v; the json package %+v", b, ack, r.PubAck)
		}
	})
}

// TestEncodeIsTheJSONPackages: an operation's log entry (encode, with its
// payload's JSON in a pooled buffer) is what json.Marshal of the payload
// put in the envelope wrote, byte for byte, for payloads of any size one
// after another (a buffer grown by a large one, then reused by a small
// one, leaves nothing of the first behind).
func TestEncodeIsTheJSONPackages(t *testing.T) {
	at := time.UnixMilli(1_713_750_000_000)
	w := &Writer{opts: Options{Now: func() time.Time { return at }}}
	str := func(s string) *string { return &s }
	when := wire.Millis(at.UnixMilli())
	var cases []*ops.Validated
	for _, size := range []int{10, 2_000, 3, 500, 1_500, 0} {
		msg := strings.Repeat("é\"x", size)
		r := &ops.EventRequest{ChannelID: str("3VDNK58JZ14ZV5ZZ19466GK25T"), Title: str("disk full"), Status: str("open"),
			Message: str("m"), Severity: str("high"), EventTime: &when, Attrs: jsontext.Value(`{"b":1,"a":{"z":"w","y":2.5},"blob":` + strconv.Quote(msg) + `}`)}
		v, aerr := ops.ValidateIntegrationEvent(ops.EventCreate, r)
		if aerr != nil {
			t.Fatal(aerr)
		}
		cases = append(cases, v)
	}
	for i, v := range cases {
		got, err := w.encode(v, "op-1")
		if err != nil {
			t.Fatal(err)
		}
		payload, err := json.Marshal(v.Payload, json.Deterministic(true))
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(ops.Envelope{V: ops.EnvelopeVersion, Op: v.Op, ChannelID: v.ChannelID, OpID: "op-1",
			EntityID: v.EntityID, AcceptedAt: at.UnixMilli(), BodyHash: v.BodyHash, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: encode wrote\n%.300s\nwant\n%.300s", i, got, want)
		}
	}
}
