package ops

import (
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/wire"
)

// Every test and fuzz target of the package checks the hash views'
// encoding against json.Marshal's (see encodeHashView).
func init() { verifyHashEncoding = true }

// TestHashViewEncodingIsJSONs: the hand-written encoding of the hash views
// is json.Marshal's, byte for byte, for what validation may or may not let
// through: every string escape, invalid UTF-8, nil against empty lists,
// zero and large times, canonical and invalid JSON values. A difference
// would change the body hash of an operation already in the log, and a
// retry of it would be refused as op_id_conflict.
func TestHashViewEncodingIsJSONs(t *testing.T) {
	strs := []*string{nil, ptrTo(""), ptrTo("plain"), ptrTo("quote \" back \\ slash /"), ptrTo("\x00\x01\b\f\n\r\t\x1f\x7f"),
		ptrTo("<script>&amp;</script>"), ptrTo("\u2028\u2029 é 日本 🚀"), ptrTo("bad \xff\xfe utf8 \xc3"), ptrTo("\ufffd")}
	lists := [][]string{nil, {}, {"a"}, {"", "x\xffy", "<&>"}}
	times := []*wire.Millis{nil, ptrTo(wire.Millis(0)), ptrTo(wire.Millis(1_713_750_000_000)), ptrTo(wire.Millis(253_402_300_799_999))}
	// As the views hold them: canonJSON's answers (canonical, or the
	// invalid value as it was, which falls back to json.Marshal).
	raws := []jsontext.Value{nil, canonJSON(jsontext.Value(`{}`)), canonJSON(jsontext.Value(`{"a":[1,2.5e0,"x\/"],"b":null,"c":{"d":true}}`)),
		canonJSON(jsontext.Value(` { "z" : 1 , "a" : "\u00e9\u2028<>" } `)), canonJSON(jsontext.Value(`{"a":`)), canonJSON(jsontext.Value(` [ 1e3 , "\ud83d\ude80" ] `))}
	checked := 0
	for i := range 400 {
		s := func(k int) *string { return strs[(i*7+k*3)%len(strs)] }
		l := func(k int) []string { return lists[(i+k)%len(lists)] }
		m := func(k int) *wire.Millis { return times[(i*5+k)%len(times)] }
		r := func(k int) jsontext.Value { return raws[(i*3+k)%len(raws)] }
		for _, view := range []any{
			EventRequest{ChannelID: s(0), Password: s(1), OpID: s(2), EventID: s(3), ThingID: s(4), Title: s(5), Description: s(6),
				Status: s(7), Message: s(8), Severity: s(9), EventTime: m(0), StartedAt: m(1), EndedAt: m(2), Tags: l(0), Images: l(1),
				Attrs: r(0), Metadata: r(1), Ciphertext: s(10)},
			ThingRequest{ChannelID: s(0), Password: s(1), OpID: s(2), ThingID: s(3), Title: s(4), Description: s(5), Tags: l(0),
				PrimaryImage: s(6), Images: l(1), CreatedAt: m(0), DeletedAt: m(1), ObservedAt: m(2), ExternalIDs: r(0),
				LocationType: s(7), LocationValue: s(8), Attrs: r(1), Metadata: r(2), Ciphertext: s(9)},
			MessageRequest{ChannelID: s(0), Password: s(1), OpID: s(2), ThingID: s(3), Title: s(4), Body: s(5), Severity: s(6),
				OccurredAt: m(0), URL: s(7), Images: l(0), Tags: l(1), Metadata: r(0), Ciphertext: s(8), TTL: m(1)},
		} {
			got, err := encodeHashView(view) // panics on a difference (verifyHashEncoding)
			want, werr := json.Marshal(view, hashOptions)
			if (err == nil) != (werr == nil) || (err == nil && string(got) != string(want)) {
				t.Fatalf("%T: got %s, %v; json.Marshal %s, %v", view, got, err, want, werr)
			}
			if _, ok := appendHashView(nil, view); ok {
				checked++
			}
		}
	}
	if checked < 600 {
		t.Fatalf("only %d of 1200 views were encoded by hand; the rest fell back to json.Marshal", checked)
	}
}

func ptrTo[T any](v T) *T { return &v }
