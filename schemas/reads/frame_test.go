package reads

import (
	"bytes"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// canonicalItems are stored items as the fold writes them: JSON in the
// json package's canonical form, with what a payload may hold (escapes,
// non-ASCII, HTML characters, U+2028, numbers of every shape, nesting).
func canonicalItems(t testing.TB) [][]byte {
	t.Helper()
	var items [][]byte
	for i, payload := range []string{
		`{}`,
		`{"title":"disk \"full\" on nas\\1","attrs":{"a":[1,-0,2.5e-7,1E+300,123456789012345678901234567890],"b":null,"c":true}}`,
		`{"body":"é 日本語 \u00e9 \u2028 <b>&amp;</b> \ud83d\ude00 tab\tnewline\n\u0001"}`,
		`{"nested":{"deep":{"deeper":[[],{},[{"x":""}]]}}}`,
	} {
		var v jsontext.Value
		if err := json.Unmarshal([]byte(payload), &v); err != nil {
			t.Fatal(err)
		}
		env, err := json.Marshal(ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
			OpID: "op" + strings.Repeat("x", i), EntityID: "m", AcceptedAt: 1713750000000, BodyHash: "h", Payload: v})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, AppendItem(nil, uint64(i+1), ops.KindMessage, env))
	}
	return append(items, []byte(`"a bare string"`), []byte(`17`))
}

// oldPath is what the projector and ingest wrote before the framings: the
// page marshalled, the Response marshalled, decoded by ingest, and the
// data marshalled into the HTTP envelope, each hop a parse and re-encode.
func oldPath(t *testing.T, page any) []byte {
	t.Helper()
	data, err := json.Marshal(page)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(Response{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	var resp Response
	if err := json.Unmarshal(wire, &resp); err != nil {
		t.Fatal(err)
	}
	out, err := apierr.EncodeOK(resp.Data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newPath frames data as the projector and ingest do now.
func newPath(t *testing.T, data []byte) []byte {
	t.Helper()
	wire := AppendResponse(nil, data)
	got, ok := ResponseData(wire)
	if !ok {
		t.Fatalf("ResponseData refused %s", wire)
	}
	return append(append([]byte(`{"success":true,"data":`), got...), '}')
}

// TestFramedPagesAreWhatTheEncoderWrote: a history page and a list page
// written by hand around stored items, passed through the Response
// framing, are byte for byte the answer the old decode/re-encode path
// gave the apps, for every shape of page (empty, one item, many, has_more,
// a cursor).
func TestFramedPagesAreWhatTheEncoderWrote(t *testing.T) {
	items := canonicalItems(t)
	for _, n := range []int{0, 1, len(items)} {
		for _, more := range []bool{false, true} {
			page := items[:n]
			hist := historyPage(page, 18446744073709551615, more, 3)
			want := oldPath(t, HistoryData{Items: values(page), NextAfter: 18446744073709551615, HasMore: more, FirstSeq: 3})
			if got := newPath(t, hist); !bytes.Equal(got, want) {
				t.Errorf("history page of %d items:\n got %s\nwant %s", n, got, want)
			}
			cursor := ""
			if more {
				cursor = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
			}
			list, err := AppendListPage(nil, page, cursor, more)
			if err != nil {
				t.Fatal(err)
			}
			want = oldPath(t, ListData{Items: values(page), NextCursor: cursor, HasMore: more})
			if got := newPath(t, list); !bytes.Equal(got, want) {
				t.Errorf("list page of %d items:\n got %s\nwant %s", n, got, want)
			}
		}
	}
	// A single snapshot goes through the framing unchanged too.
	for _, it := range items {
		if got, want := newPath(t, it), oldPath(t, jsontext.Value(it)); !bytes.Equal(got, want) {
			t.Errorf("snapshot:\n got %s\nwant %s", got, want)
		}
	}
}

// historyPage writes a history page as the projector does: the head, the
// items as stored, comma-separated, the tail.
func historyPage(items [][]byte, nextAfter uint64, hasMore bool, firstSeq uint64) []byte {
	b := AppendHistoryHead(nil)
	b = append(b, bytes.Join(items, []byte(","))...)
	return AppendHistoryTail(b, nextAfter, hasMore, firstSeq)
}

func values(items [][]byte) []jsontext.Value {
	out := make([]jsontext.Value, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

// TestResponseDataTakesOnlySuccesses: an error answer, or anything but a
// Response with data alone, is left to the decoder.
func TestResponseDataTakesOnlySuccesses(t *testing.T) {
	errAnswer, _ := json.Marshal(Response{ErrorCode: apierr.ThingNotFound, Error: "thing_id"})
	for _, a := range []string{string(errAnswer), ``, `{}`, `{"data":}`, `{"data":1`, `null`} {
		if d, ok := ResponseData([]byte(a)); ok {
			t.Errorf("ResponseData(%s) = %s, want refused", a, d)
		}
	}
	marshalled, _ := json.Marshal(Response{Data: jsontext.Value(`{"a":1}`)})
	if d, ok := ResponseData(marshalled); !ok || string(d) != `{"a":1}` {
		t.Errorf("ResponseData of a marshalled Response = %s, %v", d, ok)
	}
}

// TestListPageRefusesAnInvalidCursor: as json.Marshal did.
func TestListPageRefusesAnInvalidCursor(t *testing.T) {
	if _, err := AppendListPage(nil, nil, "\xff", true); err == nil {
		t.Fatal("a cursor that is not UTF-8 was framed")
	}
	if _, err := json.Marshal(ListData{NextCursor: "\xff"}); err == nil {
		t.Fatal("json.Marshal took it: the framing should too")
	}
}

// FuzzFramedPageIsMarshal: for any JSON value in canonical form (what the
// json package writes, as every stored item is), the hand-written page
// around it is json.Marshal's.
func FuzzFramedPageIsMarshal(f *testing.F) {
	for _, it := range canonicalItems(f) {
		f.Add(it)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var v jsontext.Value
		if json.Unmarshal(in, &v) != nil {
			return
		}
		item, err := json.Marshal(v) // its canonical form, as stored
		if err != nil {
			return
		}
		page := [][]byte{item, item}
		want, err := json.Marshal(HistoryData{Items: values(page), NextAfter: 7, HasMore: true, FirstSeq: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := historyPage(page, 7, true, 1); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
		want, _ = json.Marshal(Response{Data: item})
		if got := AppendResponse(nil, item); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
		if got := EncodeResponse(item); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}
