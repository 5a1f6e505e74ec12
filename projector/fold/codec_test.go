package fold

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
)

// reference is what the snapshots' JSON was before it was written by hand:
// the json package's encoding of the struct, attrs as a map with sorted
// keys. raw holds the attrs and metadata as they were sent (not
// normalised), which the json package reformats on the way out.
func reference(t *testing.T, snap any, raw rawValues) []byte {
	t.Helper()
	b, err := json.Marshal(snap, json.Deterministic(true), json.WithMarshalers(json.MarshalToFunc(
		func(enc *jsontext.Encoder, a Attrs) error {
			m := map[string]jsontext.Value{}
			for _, at := range a {
				m[at.Name] = raw.attrs[at.Name]
			}
			return json.MarshalEncode(enc, m, json.Deterministic(true))
		})))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type rawValues struct {
	attrs    map[string]jsontext.Value
	metadata jsontext.Value
}

// gen makes random snapshots whose strings and JSON values exercise the
// encodings: escapes, control characters, non-ASCII, HTML characters,
// whitespace inside raw values.
type gen struct{ rng *rand.Rand }

var pieces = []string{"a", "Z", "é", "日本", "\u2028", "<", ">", "&", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\u007f", "😀", " ", "'", "\ufffd"}

func (g gen) str() string {
	if g.rng.IntN(4) == 0 {
		return ""
	}
	var b strings.Builder
	for range g.rng.IntN(6) + 1 {
		b.WriteString(pieces[g.rng.IntN(len(pieces))])
	}
	return b.String()
}

func (g gen) list() []string {
	switch g.rng.IntN(3) {
	case 0:
		return nil
	}
	l := make([]string, g.rng.IntN(3)+1)
	for i := range l {
		l[i] = g.str()
	}
	return l
}

func (g gen) optInt() *int64 {
	if g.rng.IntN(2) == 0 {
		return nil
	}
	v := g.int()
	return &v
}

func (g gen) int() int64 {
	switch g.rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return -g.rng.Int64()
	case 2:
		return g.rng.Int64N(100)
	}
	return g.rng.Int64()
}

// value returns a JSON value as a sender might write it (spaces, escapes).
func (g gen) value(depth int) jsontext.Value {
	switch g.rng.IntN(9) {
	case 0:
		return jsontext.Value("true")
	case 1:
		return jsontext.Value("false")
	case 2:
		return jsontext.Value(fmt.Sprint(g.rng.IntN(2000) - 1000))
	case 3:
		return jsontext.Value([]string{"1.5", "-0.25", "1e3", "2E-2", "0", "-0", "12345678901234567890"}[g.rng.IntN(7)])
	case 4:
		return jsontext.Value(`"\u0041\/b\u00e9"`)
	case 5:
		if depth < 2 {
			var b strings.Builder
			b.WriteString("{ ")
			for i := range g.rng.IntN(3) {
				if i > 0 {
					b.WriteString(" , ")
				}
				name, _ := jsontext.AppendQuote(nil, fmt.Sprintf("k%d%s", i, g.str()))
				fmt.Fprintf(&b, "%s : %s", name, g.value(depth+1))
			}
			b.WriteString(" }")
			return jsontext.Value(b.String())
		}
	case 6:
		if depth < 2 {
			return jsontext.Value(fmt.Sprintf("[ %s , %s ]", g.value(depth+1), g.value(depth+1)))
		}
	}
	q, _ := jsontext.AppendQuote(nil, g.str())
	return q
}

func (g gen) attrs() (Attrs, map[string]jsontext.Value) {
	raw := map[string]jsontext.Value{}
	var a Attrs
	for range g.rng.IntN(5) {
		name := g.str()
		if _, dup := raw[name]; dup {
			continue
		}
		v := g.value(0)
		nv, err := normalize(v)
		if err != nil {
			panic(fmt.Sprintf("normalize %s: %v", v, err))
		}
		raw[name] = v
		a = append(a, Attr{Name: name, Value: nv})
	}
	sortAttrs(a)
	return a, raw
}

func sortAttrs(a Attrs) {
	for i := range a {
		for j := i + 1; j < len(a); j++ {
			if a[j].Name < a[i].Name {
				a[i], a[j] = a[j], a[i]
			}
		}
	}
}

func (g gen) metadata() (norm, raw jsontext.Value) {
	if g.rng.IntN(2) == 0 {
		return nil, nil
	}
	raw = jsontext.Value(fmt.Sprintf(`{ "a" : %s , "b\u00e9" : [ 1 , "x" ] }`, g.value(1)))
	norm, err := normalize(raw)
	if err != nil {
		panic(err)
	}
	return norm, raw
}

func (g gen) event() (*Event, rawValues) {
	e := &Event{ChannelID: g.str(), EventID: g.str(), ThingID: g.str(), Title: g.str(), Description: g.str(),
		Status: g.str(), Message: g.str(), Severity: g.str(), State: g.str(), EventTime: g.int(), StartedAt: g.int(),
		EndedAt: g.optInt(), Tags: g.list(), Images: g.list(), Ciphertext: g.str(), Deadline: g.optInt(),
		CreatedAt: g.int(), UpdatedAt: g.int(), Version: g.rng.Uint64(), LastSeq: g.rng.Uint64N(1000), LastOpID: g.str()}
	var raw rawValues
	e.Attrs, raw.attrs = g.attrs()
	e.Metadata, raw.metadata = g.metadata()
	return e, raw
}

func (g gen) thing() (*Thing, rawValues) {
	t := &Thing{ChannelID: g.str(), ThingID: g.str(), Title: g.str(), Description: g.str(), State: g.str(),
		Tags: g.list(), PrimaryImage: g.str(), Images: g.list(), LocationType: g.str(), LocationValue: g.str(),
		Ciphertext: g.str(), CreatedAt: g.int(), ObservedAt: g.int(), ArchivedAt: g.optInt(), DeletedAt: g.optInt(),
		UpdatedAt: g.int(), Version: g.rng.Uint64(), LastSeq: g.rng.Uint64N(1000), LastOpID: g.str()}
	if g.rng.IntN(2) == 0 {
		t.ExternalIDs = map[string]string{}
		for range g.rng.IntN(4) + 1 {
			t.ExternalIDs[g.str()] = g.str()
		}
	}
	var raw rawValues
	t.Attrs, raw.attrs = g.attrs()
	t.Metadata, raw.metadata = g.metadata()
	return t, raw
}

// withRawMetadata returns a copy of the snapshot with the metadata as sent.
func withRawMetadata(snap any, raw rawValues) any {
	switch s := snap.(type) {
	case *Event:
		c := *s
		c.Metadata = raw.metadata
		return &c
	case *Thing:
		c := *s
		c.Metadata = raw.metadata
		return &c
	}
	return nil
}

// TestJSONIsTheJSONPackages: the hand-written JSON of a snapshot is byte
// for byte what the json package wrote for it (the answers of /event/get
// and /thing/get did not change when the fold stopped using it).
func TestJSONIsTheJSONPackages(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(1, 2))}
	for i := range 3000 {
		var snap any
		var raw rawValues
		if i%2 == 0 {
			snap, raw = g.event()
		} else {
			snap, raw = g.thing()
		}
		got, err := JSON(snap)
		if err != nil {
			t.Fatal(err)
		}
		want := reference(t, withRawMetadata(snap, raw), raw)
		if !bytes.Equal(got, want) {
			t.Fatalf("snapshot %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestStoredFormRoundTrips: a snapshot reads back equal from its stored
// form, and a stored form decodes and encodes back to the same bytes.
func TestStoredFormRoundTrips(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(3, 4))}
	for i := range 3000 {
		var b []byte
		var back any
		var err error
		var snap any
		if i%2 == 0 {
			e, _ := g.event()
			snap, b = e, EncodeEvent(nil, e)
			back, err = DecodeEvent(b)
		} else {
			th, _ := g.thing()
			snap, b = th, EncodeThing(nil, th)
			back, err = DecodeThing(b)
		}
		if err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		if !reflect.DeepEqual(canon(snap), canon(back)) {
			t.Fatalf("snapshot %d:\n%+v\nread back as\n%+v", i, snap, back)
		}
		if again := Encode(back); !bytes.Equal(again, b) {
			t.Fatalf("snapshot %d: encoded again differs", i)
		}
		j1, _ := JSON(snap)
		j2, _ := JSON(back)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("snapshot %d: JSON differs after a round trip:\n%s\n%s", i, j1, j2)
		}
		st, err := StateOf(b)
		if want := reflect.ValueOf(snap).Elem().FieldByName("State").String(); err != nil || st != want {
			t.Fatalf("snapshot %d: StateOf %q, %v; want %q", i, st, err, want)
		}
		// Every truncation is refused.
		for n := range len(b) {
			if _, err := decodeAny(b[:n]); err == nil {
				t.Fatalf("snapshot %d: a truncation to %d of %d bytes decodes", i, n, len(b))
			}
		}
	}
}

// canon maps the empty lists and maps a stored form cannot tell from
// absent ones to nil.
func canon(snap any) any {
	switch s := snap.(type) {
	case *Event:
		c := *s
		c.Tags, c.Images, c.Attrs = nilIfEmpty(c.Tags), nilIfEmpty(c.Images), nilIfEmpty(c.Attrs)
		c.attrsCounted = 0 // a count kept in memory, not part of the snapshot
		return &c
	case *Thing:
		c := *s
		c.Tags, c.Images, c.Attrs = nilIfEmpty(c.Tags), nilIfEmpty(c.Images), nilIfEmpty(c.Attrs)
		c.attrsCounted = 0
		if len(c.ExternalIDs) == 0 {
			c.ExternalIDs = nil
		}
		return &c
	}
	return snap
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

func decodeAny(b []byte) (any, error) {
	if len(b) > 0 && b[0] == tagThing {
		return DecodeThing(b)
	}
	return DecodeEvent(b)
}

// FuzzStoredForm: whatever bytes decode as a snapshot encode back to
// exactly those bytes (one encoding per snapshot), and nothing panics.
func FuzzStoredForm(f *testing.F) {
	g := gen{rand.New(rand.NewPCG(5, 6))}
	for range 20 {
		e, _ := g.event()
		th, _ := g.thing()
		f.Add(EncodeEvent(nil, e))
		f.Add(EncodeThing(nil, th))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, err := decodeAny(b)
		if err != nil {
			return
		}
		if again := Encode(snap); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes, but encodes back as %x", b, again)
		}
		if _, err := JSON(snap); err != nil && !strings.Contains(err.Error(), "UTF-8") {
			t.Fatalf("JSON: %v", err)
		}
	})
}

// payloadSamples are payloads of every shape the decoders must treat as
// the json package does: valid ones, wrong types, nulls, duplicates,
// unknown members, escapes, numbers that are not int64.
var payloadSamples = []string{
	`{"event_id":"e1","title":"t","status":"s","message":"m","severity":"high","event_time":1713750000000,"started_at":1713750000000,"tags":["a","b"],"attrs":{"x":1,"n":{"a":null}},"metadata":{"k":"v"},"deadline":5,"refresh":true}`,
	`{"event_id":"e1","status":"s","message":"m","severity":"normal","event_time":-5,"ended_at":7,"images":[],"attrs":null,"metadata":null,"ciphertext":"c"}`,
	`{"event_id":null,"title":null,"event_time":null,"started_at":null,"tags":null,"thing_id":"\u0041b\/c"}`,
	`{"event_id":"e","tags":[null,"x"]}`,
	`{"event_id":"e","tags":[1]}`,
	`{"event_id":1}`,
	`{"event_time":1.5}`,
	`{"event_time":1e3}`,
	`{"event_time":-0}`,
	`{"event_time":9223372036854775807}`,
	`{"event_time":9223372036854775808}`,
	`{"event_time":-9223372036854775808}`,
	`{"event_time":"5"}`,
	`{"event_id":"a","event_id":"b"}`,
	`{"unknown":{"deep":[1,2,{"x":null}]},"event_id":"e"}`,
	`{"unknown":{"a":1,"a":2}}`,
	`{"Event_ID":"e"}`,
	`{"refresh":1}`,
	`{"refresh":null}`,
	`{} `,
	`{}x`,
	`[]`,
	`null`,
	`{"event_id":"\ud800"}`,
	"{\"event_id\":\"\xff\"}",
	`{"thing_id":"t","observed_at":1,"created_at":2,"deleted_at":null,"external_ids":{"a":"1","b":null},"location_type":"gps","location_value":"1,2","primary_image":"i"}`,
	`{"thing_id":"t","external_ids":{"a":1}}`,
	`{"thing_id":"t","external_ids":[]}`,
	`{"thing_id":"t","external_ids":null}`,
	`{"thing_id":"t","external_ids":{}}`,
	`{"thing_id":"t","external_ids":{"a":"1","a":"2"}}`,
	`{"thing_id":"t","tags":"x"}`,
	`{"thing_id":"t","attrs":[1],"metadata":"m"}`,
	`{ "thing_id" : "t" , "attrs" : { "a" : 1 } }`,
	`{0refresh"0,`, // a member without a value: the skim once handed the decoder an empty one
}

// TestPayloadDecodersAgree: the hand-written decoders accept exactly what
// json.Unmarshal accepts and decode it to the same values.
func TestPayloadDecodersAgree(t *testing.T) {
	for _, s := range payloadSamples {
		checkPayloadDecoders(t, []byte(s))
	}
}

// FuzzPayloadDecoders: as TestPayloadDecodersAgree, on any input.
func FuzzPayloadDecoders(f *testing.F) {
	for _, s := range payloadSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkPayloadDecoders(t, b) })
}

func checkPayloadDecoders(t *testing.T, b []byte) {
	t.Helper()
	var ew, eg ops.EventPayload
	errW, errG := json.Unmarshal(b, &ew), decodeEventPayload(checkAll, b, &eg)
	agree(t, "event payload", b, errW, errG, &ew, &eg)
	errEvent := errG
	var tw, tg ops.ThingPayload
	errW, errG = json.Unmarshal(b, &tw), decodeThingPayload(checkAll, b, &tg)
	agree(t, "thing payload", b, errW, errG, &tw, &tg)
	errThing := errG
	var vw, vg ops.Envelope
	errW, errG = json.Unmarshal(b, &vw), DecodeEnvelope(b, &vg)
	agree(t, "envelope", b, errW, errG, &vw, &vg)

	// The skim the fold reads a checked payload with: the same values on
	// what the scan accepts, and on anything else no panic.
	var es ops.EventPayload
	if errS := decodeEventPayload(checkedAlready, b, &es); errEvent == nil && (errS != nil || !reflect.DeepEqual(eg, es)) {
		t.Fatalf("event payload %q, skimmed: %v\n%+v\nwant %+v", b, errS, es, eg)
	}
	var ts ops.ThingPayload
	if errS := decodeThingPayload(checkedAlready, b, &ts); errThing == nil && (errS != nil || !reflect.DeepEqual(tg, ts)) {
		t.Fatalf("thing payload %q, skimmed: %v\n%+v\nwant %+v", b, errS, ts, tg)
	}
	_, _, _ = mergePatch(checkedAlready, Attrs{{Name: "a", Value: jsontext.Value(`{"b":1}`)}}, 0, b)
}

func agree(t *testing.T, what string, in []byte, errWant, errGot error, want, got any) {
	t.Helper()
	if (errWant == nil) != (errGot == nil) {
		t.Fatalf("%s %q: json.Unmarshal: %v; decoder: %v", what, in, errWant, errGot)
	}
	if errWant == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%s %q:\njson.Unmarshal %+v\n      decoder %+v", what, in, want, got)
	}
}

// TestEnvelopeDecoderAgrees: envelopes as ingest writes them, and mangled.
func TestEnvelopeDecoderAgrees(t *testing.T) {
	for _, s := range []string{
		`{"v":1,"op":"event.create","channel_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","op_id":"a","entity_id":"e","accepted_at":5,"body_hash":"h","payload":{"event_id":"e"}}`,
		`{"v":1,"payload":{"x":[1,2]},"op":"thing.update"}`,
		`{"v":"1"}`,
		`{"v":1.0}`,
		`{"v":99999999999999999999}`,
		`{"payload":null}`,
		`{"payload":}`,
		`{"op":"x","op":"y"}`,
	} {
		checkPayloadDecoders(t, []byte(s))
	}
}

// oldMergePatch is MergePatch as it was written on maps and the json
// package, the reference of TestMergePatchAgrees.
func oldMergePatch(cur map[string]jsontext.Value, patch jsontext.Value) (map[string]jsontext.Value, error) {
	out := make(map[string]jsontext.Value, len(cur))
	for k, v := range cur {
		out[k] = v
	}
	if len(patch) == 0 || patch.Kind() == 'n' {
		return out, nil
	}
	var p map[string]jsontext.Value
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	compact := func(v jsontext.Value) jsontext.Value {
		c := v.Clone()
		if err := c.Compact(); err != nil {
			return v
		}
		return c
	}
	for k, v := range p {
		switch v.Kind() {
		case 'n':
			delete(out, k)
		case '{':
			base := map[string]jsontext.Value{}
			if c := out[k]; len(c) > 0 && c.Kind() == '{' {
				if err := json.Unmarshal(c, &base); err != nil {
					return nil, err
				}
			}
			var np map[string]jsontext.Value
			if err := json.Unmarshal(v, &np); err != nil {
				return nil, err
			}
			for nk, nv := range np {
				if nv.Kind() == 'n' {
					delete(base, nk)
					continue
				}
				base[nk] = compact(nv)
			}
			merged, err := json.Marshal(base, json.Deterministic(true))
			if err != nil {
				return nil, err
			}
			out[k] = merged
		default:
			out[k] = compact(v)
		}
	}
	return out, nil
}

// TestMergePatchAgrees: a sequence of random patches merged by MergePatch
// gives, after each, the JSON the map-based merge gave.
func TestMergePatchAgrees(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(7, 8))}
	names := []string{"a", "b", "n", "é", "x\"y", "\u2028"}
	for round := range 200 {
		var cur Attrs
		old := map[string]jsontext.Value{}
		for step := range 20 {
			var b strings.Builder
			b.WriteString("{")
			for i := range g.rng.IntN(4) {
				if i > 0 {
					b.WriteString(",")
				}
				name, _ := jsontext.AppendQuote(nil, names[g.rng.IntN(len(names))])
				var v jsontext.Value
				switch g.rng.IntN(4) {
				case 0:
					v = jsontext.Value("null")
				case 1:
					var o strings.Builder
					o.WriteString("{")
					for j := range g.rng.IntN(3) {
						if j > 0 {
							o.WriteString(" , ")
						}
						n, _ := jsontext.AppendQuote(nil, names[g.rng.IntN(len(names))])
						nv := g.value(1)
						if g.rng.IntN(3) == 0 {
							nv = jsontext.Value("null")
						}
						fmt.Fprintf(&o, "%s: %s", n, nv)
					}
					o.WriteString("}")
					v = jsontext.Value(o.String())
				default:
					v = g.value(1)
				}
				fmt.Fprintf(&b, "%s:%s", name, v)
			}
			b.WriteString("}")
			patch := jsontext.Value(b.String())
			next, err := MergePatch(cur, patch)
			if err == nil {
				// The fold's merge of a checked patch: the same.
				skimmed, _, err := mergePatch(checkedAlready, cur, 0, patch)
				if err != nil || !reflect.DeepEqual(skimmed, next) {
					t.Fatalf("round %d step %d, patch %s: skimmed %v, %v; want %v", round, step, patch, skimmed, err, next)
				}
			}
			oldNext, oldErr := oldMergePatch(old, patch)
			if (err == nil) != (oldErr == nil) {
				t.Fatalf("round %d step %d, patch %s: MergePatch %v, the map-based merge %v", round, step, patch, err, oldErr)
			}
			if err != nil {
				continue
			}
			got, err := JSON(next)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(oldNext, json.Deterministic(true))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d step %d, patch %s:\n got %s\nwant %s", round, step, patch, got, want)
			}
			cur, old = next, oldNext
		}
	}
}
