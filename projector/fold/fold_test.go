package fold

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
)

// TestGolden runs the data-driven files of testdata (cockroachdb/datadriven;
// rewrite the expectations with -rewrite). The one command:
//
//	fold
//	op <name> seq=<n> at=<accepted_at> id=<entity_id> op_id=<op_id>
//	<payload JSON on one line>
//	...
//	----
//	<the final snapshot, indented JSON>
func TestGolden(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "fold":
				return foldFile(t, d.Input)
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
				return ""
			}
		})
	})
}

func foldFile(t *testing.T, input string) string {
	t.Helper()
	var ev *Event
	var th *Thing
	sc := bufio.NewScanner(strings.NewReader(input))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "op ") {
			t.Fatalf("expected an op line, got %q", line)
		}
		env, seq := parseOp(t, line)
		if !sc.Scan() {
			t.Fatalf("op without payload: %q", line)
		}
		env.Payload = jsontext.Value(sc.Text())
		if err := CheckEnvelope(&env); err != nil {
			t.Fatal(err)
		}
		var err error
		switch env.Op.Kind() {
		case ops.KindEvent:
			ev, err = ApplyEvent(ev, &env, seq)
		case ops.KindThing:
			th, err = ApplyThing(th, &env, seq)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var snap any = ev
	if th != nil {
		snap = th
	}
	b, err := JSON(snap)
	if err != nil {
		t.Fatal(err)
	}
	v := jsontext.Value(b)
	if err := v.Indent(jsontext.WithIndent("  ")); err != nil {
		t.Fatal(err)
	}
	return string(v) + "\n"
}

func parseOp(t *testing.T, line string) (ops.Envelope, uint64) {
	f := strings.Fields(line)
	env := ops.Envelope{V: 1, Op: ops.Name(f[1]), ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
	var seq uint64
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "seq":
			seq, _ = strconv.ParseUint(v, 10, 64)
		case "at":
			env.AcceptedAt, _ = strconv.ParseInt(v, 10, 64)
		case "id":
			env.EntityID = v
		case "op_id":
			env.OpID = v
		default:
			t.Fatalf("unknown op attribute %q", k)
		}
	}
	return env, seq
}

func TestEncodeIsDeterministic(t *testing.T) {
	var attrs Attrs
	if err := jsonUnmarshal(`{"b":1,"a":2,"c":{"y":1,"x":2}}`, &attrs); err != nil {
		t.Fatal(err)
	}
	th := &Thing{ThingID: "x", Attrs: attrs, ExternalIDs: map[string]string{"z": "1", "a": "2", "m": "3"}}
	first, _ := JSON(th)
	stored := Encode(th)
	for i := 0; i < 50; i++ {
		b, _ := JSON(th)
		if !bytes.Equal(b, first) {
			t.Fatalf("encoding %d differs:\n%s\n%s", i, b, first)
		}
		if b := Encode(th); !bytes.Equal(b, stored) {
			t.Fatalf("stored encoding %d differs:\n%x\n%x", i, b, stored)
		}
	}
	if !bytes.Contains(first, []byte(`"attrs":{"a":2,"b":1,"c":{"y":1,"x":2}}`)) {
		t.Fatalf("attrs not sorted: %s", first)
	}
	if !bytes.Contains(first, []byte(`"external_ids":{"a":"2","m":"3","z":"1"}`)) {
		t.Fatalf("external ids not sorted: %s", first)
	}
}

func TestMergePatch(t *testing.T) {
	cases := []struct{ cur, patch, want string }{
		{`{}`, `{"a":1}`, `{"a":1}`},
		{`{"a":1}`, `{"a":null}`, `{}`},
		{`{"a":1}`, `{"b":null}`, `{"a":1}`},
		{`{"n":{"x":1,"y":2}}`, `{"n":{"y":null,"z":3}}`, `{"n":{"x":1,"z":3}}`},
		{`{"n":5}`, `{"n":{"x":1,"y":null}}`, `{"n":{"x":1}}`},
		{`{"n":{"x":1}}`, `{"n":"flat"}`, `{"n":"flat"}`},
		{`{"a":true}`, `null`, `{"a":true}`},
		{`{"a":1}`, `{"a":  [ ]}`, `{"a":[]}`}, // validation forbids arrays; the fold stays total
		// A nested object stored unsorted (as a create's value came) is
		// merged in name order.
		{`{"n":{"y":2,"x":1}}`, `{"n":{"z":3}}`, `{"n":{"x":1,"y":2,"z":3}}`},
		{`{"n":{"q\"s":1,"p":{}}}`, `{"n":{"r\u00e9":"\u0041"}}`, `{"n":{"p":{},"q\"s":1,"ré":"A"}}`},
		{`{"n":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}}`, `{"n":{"i":9,"a":null}}`,
			`{"n":{"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}}`},
	}
	for _, c := range cases {
		var cur Attrs
		if err := jsonUnmarshal(c.cur, &cur); err != nil {
			t.Fatal(err)
		}
		got, err := MergePatch(cur, jsontext.Value(c.patch))
		if err != nil {
			t.Fatalf("%s + %s: %v", c.cur, c.patch, err)
		}
		b, _ := JSON(got)
		if string(b) != c.want {
			t.Errorf("%s + %s = %s, want %s", c.cur, c.patch, b, c.want)
		}
		if b2, _ := JSON(cur); fmt.Sprint(string(b2)) != mustCanon(t, c.cur) {
			t.Errorf("MergePatch modified its input: %s", b2)
		}
	}
}

func TestCheckEnvelope(t *testing.T) {
	for _, e := range []ops.Envelope{{V: 2, Op: ops.EventCreate}, {V: 0, Op: ops.EventCreate}, {V: 1, Op: "event.explode"}} {
		if CheckEnvelope(&e) == nil {
			t.Errorf("accepted %+v", e)
		}
	}
}

// TestAttrsStayWithinTheirBound: an entity whose every update adds
// members stops growing at MaxAttrsBytes: the member that would take it
// past is left out and the attrs say so (ops.TruncatedAttr), while a
// smaller member after it, a replacement that does not grow and a removal
// still apply; once something is removed, growth applies again.
func TestAttrsStayWithinTheirBound(t *testing.T) {
	big := strings.Repeat("x", 1000)
	full := attrsToTheBound(t, big)
	// In one patch: a member too large even once the removal beside it
	// made room (left out), a small new one that fits, a replacement of
	// the same size, a removal.
	patch := fmt.Sprintf(`{"a_big":%q,"a":1,"k0001":%q,"k0002":null}`, strings.Repeat("x", 3000), strings.Repeat("y", 1000))
	got, err := MergePatch(full, jsontext.Value(patch))
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("a_big") != nil || string(got.Get("a")) != "1" || string(got.Get("k0001")) != `"`+strings.Repeat("y", 1000)+`"` ||
		got.Get("k0002") != nil || string(got.Get(ops.TruncatedAttr)) != "true" {
		t.Fatalf("patch at the bound applied as %d members: a_big %q, a %q, k0002 %q, marker %q", len(got),
			got.Get("a_big"), got.Get("a"), got.Get("k0002"), got.Get(ops.TruncatedAttr))
	}
	// With room made by removals, a large member fits again.
	got, err = MergePatch(got, jsontext.Value(fmt.Sprintf(`{"k0003":null,"k0004":null,"a_big":%q}`, big)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("a_big") == nil || got.size() > MaxAttrsBytes+64 {
		t.Fatalf("with room made, the member was left out (size %d)", got.size())
	}
	// A snapshot past the bound (stored before there was one): what
	// shrinks it applies, what grows it does not.
	over := append(Attrs(nil), full...)
	over = append(over, Attr{Name: "z_over", Value: jsontext.Value(`"` + strings.Repeat("z", 2*MaxAttrsBytes) + `"`)})
	got, err = MergePatch(over, jsontext.Value(`{"k0001":"yy","z_over":"short"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Get("z_over")) != `"short"` || string(got.Get("k0001")) != `"yy"` || got.Get(ops.TruncatedAttr) != nil {
		t.Fatalf("a shrinking replacement of attrs past the bound: z_over %.20q, k0001 %.20q, marker %q",
			got.Get("z_over"), got.Get("k0001"), got.Get(ops.TruncatedAttr))
	}
	got, err = MergePatch(over, jsontext.Value(`{"k0001":"`+strings.Repeat("w", 1001)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Get("k0001")) == `"`+strings.Repeat("w", 1001)+`"` || got.Get(ops.TruncatedAttr) == nil {
		t.Fatal("a growing replacement of attrs past the bound applied")
	}
}

// TestExternalIDsStayWithinTheirBound: a Thing's external ids stop
// growing at MaxExternalIDsBytes, which ids of a patch are kept does not
// depend on a map's order (name order), removals apply first, and the
// attrs say that ids were left out.
func TestExternalIDsStayWithinTheirBound(t *testing.T) {
	value := strings.Repeat("v", 250)
	patch := func(round, n int) map[string]*string {
		p := make(map[string]*string, n)
		for j := range n {
			p[fmt.Sprintf("id%03d_%03d", round, j)] = &value
		}
		return p
	}
	var th *Thing
	for round := 0; ; round++ {
		env := &ops.Envelope{V: 1, Op: ops.ThingUpdate, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", EntityID: "t", OpID: fmt.Sprintf("op%03d", round), AcceptedAt: 1}
		if round == 0 {
			env.Op = ops.ThingCreate
		}
		pl, err := json.Marshal(ops.ThingPayload{ThingID: "t", ObservedAt: 1, ExternalIDs: patch(round, 100)})
		if err != nil {
			t.Fatal(err)
		}
		env.Payload = pl
		next, err := ApplyThing(th, env, uint64(round+1))
		if err != nil {
			t.Fatal(err)
		}
		if next.Attrs.Get(ops.TruncatedAttr) != nil {
			size := 0
			for k, v := range next.ExternalIDs {
				size += externalIDSize(k, v)
			}
			if size > MaxExternalIDsBytes || size+externalIDSize("id000_000", value) <= MaxExternalIDsBytes {
				t.Fatalf("cut at %d bytes, the bound %d", size, MaxExternalIDsBytes)
			}
			// The ids kept are the first by name, whatever the map's order.
			for range 20 {
				again, cut := mergeExternalIDs(th.ExternalIDs, patch(round, 100))
				if !cut || !maps.Equal(again, next.ExternalIDs) {
					t.Fatal("the ids kept at the bound depend on the patch map's order")
				}
			}
			kept := len(next.ExternalIDs) - len(th.ExternalIDs)
			if kept >= 100 || (kept > 0 && next.ExternalIDs[fmt.Sprintf("id%03d_%03d", round, kept-1)] == "") {
				t.Fatalf("kept %d ids of the patch at the bound, not the first by name", kept)
			}
			// A removal in the same patch makes room first, for an id that
			// fits only once it is applied (and sorts before it).
			p := map[string]*string{"aa_new": &value, "id000_000": nil}
			again, cut := mergeExternalIDs(next.ExternalIDs, p)
			if cut || again["id000_000"] != "" || again["aa_new"] != value {
				t.Fatalf("a removal did not make room in the same patch (cut %t)", cut)
			}
			if th.Attrs.Get(ops.TruncatedAttr) != nil {
				t.Fatal("the previous snapshot was modified")
			}
			return
		}
		if round > MaxExternalIDsBytes/(100*250) {
			t.Fatalf("external ids grew past the bound: %d of them", len(next.ExternalIDs))
		}
		th = next
	}
}

// TestAttrsAtTheBoundIgnoreMemberOrder: at MaxAttrsBytes what a patch
// keeps does not depend on the order of its members (RFC 7386 gives them
// none): a removal makes room for a member sent before it; the removals
// inside a nested object apply even when the rest of that object does not
// fit; and a name is counted as JSON writes it (escaped).
func TestAttrsAtTheBoundIgnoreMemberOrder(t *testing.T) {
	big := strings.Repeat("x", 1000)
	full := attrsToTheBound(t, big)
	renamed := fmt.Sprintf(`"renamed":%q`, big)
	for _, patch := range []string{`{"k0000":null,` + renamed + `}`, `{` + renamed + `,"k0000":null}`} {
		got, err := MergePatch(full, jsontext.Value(patch))
		if err != nil {
			t.Fatal(err)
		}
		if got.Get("renamed") == nil || got.Get("k0000") != nil || got.Get(ops.TruncatedAttr) != nil {
			t.Errorf("%.40s…: renamed kept %t, k0000 removed %t, marked %t", patch,
				got.Get("renamed") != nil, got.Get("k0000") == nil, got.Get(ops.TruncatedAttr) != nil)
		}
	}
	// A replacement that shrinks a member makes room too, sent before or
	// after the member that needs it; and the mark, when a member is left
	// out, stays within the bound.
	for _, patch := range []string{fmt.Sprintf(`{"k0005":"s","a_new":%q}`, big), fmt.Sprintf(`{"a_new":%q,"k0005":"s"}`, big)} {
		got, err := MergePatch(full, jsontext.Value(patch))
		if err != nil {
			t.Fatal(err)
		}
		if got.Get("a_new") == nil || string(got.Get("k0005")) != `"s"` || got.Get(ops.TruncatedAttr) != nil {
			t.Errorf("%.20s…: a_new kept %t, k0005 %s, marked %t", patch, got.Get("a_new") != nil, got.Get("k0005"), got.Get(ops.TruncatedAttr) != nil)
		}
	}
	// Past the bound with two new members: the shrink applies first, then
	// the first by name fits in the room it made, whatever the order.
	for _, patch := range []string{fmt.Sprintf(`{"k0005":"s","a_new":%q,"b_new":%q}`, big, big), fmt.Sprintf(`{"b_new":%q,"a_new":%q,"k0005":"s"}`, big, big)} {
		got, err := MergePatch(full, jsontext.Value(patch))
		if err != nil {
			t.Fatal(err)
		}
		if got.Get("a_new") == nil || got.Get("b_new") != nil || string(got.Get("k0005")) != `"s"` || got.Get(ops.TruncatedAttr) == nil {
			t.Errorf("%.20s…: a_new kept %t, b_new kept %t, k0005 %s, marked %t", patch, got.Get("a_new") != nil, got.Get("b_new") != nil,
				got.Get("k0005"), got.Get(ops.TruncatedAttr) != nil)
		}
	}
	// Attrs without the mark stay within the bound less its room, so that
	// it always fits when a member is left out.
	tight := append(Attrs(nil), full...)
	tight = append(tight, Attr{Name: "zz", Value: jsontext.Value(`"` + strings.Repeat("p", MaxAttrsBytes-markSize-tight.size()-memberSize("zz", jsontext.Value(`""`))-5) + `"`)})
	if got, err := MergePatch(tight, jsontext.Value(`{"y":"0123456789"}`)); err != nil || got.Get(ops.TruncatedAttr) == nil || got.size() > MaxAttrsBytes {
		t.Errorf("a member past the bound less the mark's room: marked %t, %d bytes (%v)", got.Get(ops.TruncatedAttr) != nil, got.size(), err)
	}
	for _, pad := range []int{1, 10, 20, 29, 30, 31} { // room from a little to about the mark's
		near := append(Attrs(nil), full...)
		near = append(near, Attr{Name: "zz", Value: jsontext.Value(`"` + strings.Repeat("p", MaxAttrsBytes-markSize-near.size()-memberSize("zz", jsontext.Value(`""`))-pad) + `"`)})
		got, err := MergePatch(near, jsontext.Value(fmt.Sprintf(`{"a_new":%q}`, big)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Get(ops.TruncatedAttr) == nil || got.size() > MaxAttrsBytes {
			t.Errorf("room %d: marked %t, %d bytes with the mark (bound %d)", pad, got.Get(ops.TruncatedAttr) != nil, got.size(), MaxAttrsBytes)
		}
	}
	// Room for one of two new members: the same one kept, whatever the
	// order (the first by name).
	room := full[1:]
	a, _ := MergePatch(room, jsontext.Value(fmt.Sprintf(`{"b_new":%q,"a_new":%q}`, big, big)))
	b, _ := MergePatch(room, jsontext.Value(fmt.Sprintf(`{"a_new":%q,"b_new":%q}`, big, big)))
	ja, _ := JSON(a)
	jb, _ := JSON(b)
	if !bytes.Equal(ja, jb) || a.Get("a_new") == nil || a.Get("b_new") != nil || a.Get(ops.TruncatedAttr) == nil {
		t.Errorf("at the bound, the members kept depend on their order (a_new %t, b_new %t, marked %t)",
			a.Get("a_new") != nil, a.Get("b_new") != nil, a.Get(ops.TruncatedAttr) != nil)
	}
	// A nested object that cannot grow still loses what it removes.
	nested := append(Attrs(nil), room...)
	nested, err := MergePatch(nested, jsontext.Value(`{"obj":{"old":"o","keep":1}}`))
	if err != nil || nested.Get("obj") == nil {
		t.Fatalf("setting up: %v", err)
	}
	got, err := MergePatch(nested, jsontext.Value(fmt.Sprintf(`{"obj":{"old":null,"new":%q}}`, big+big)))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Get("obj")) != `{"keep":1}` || got.Get(ops.TruncatedAttr) == nil {
		t.Errorf("a nested removal beside a member past the bound: obj %s, marked %t", got.Get("obj"), got.Get(ops.TruncatedAttr) != nil)
	}
	// Escaped names count their escapes.
	if n := memberSize("\x01\x02", jsontext.Value("1")); n != len(`"\u0001\u0002":1,`) {
		t.Errorf("a name of two control characters counts %d bytes", n)
	}
}

// TestAttrsCountKeptEqualsACount: the count of a snapshot's attrs kept
// from one operation to the next (the fold's cache) decides the bound
// exactly as a count of a snapshot decoded from the store: a Thing's
// updates, adding and removing members across the bound, fold to the same
// bytes either way.
func TestAttrsCountKeptEqualsACount(t *testing.T) {
	big, idValue := strings.Repeat("x", 3000), strings.Repeat("v", 250)
	var kept, decoded *Thing
	for i := range 300 {
		op := ops.ThingUpdate
		if i == 0 {
			op = ops.ThingCreate
		}
		patch := fmt.Sprintf(`{"k%03d":%q,"\u0001n%03d":1}`, i, big, i)
		if i%7 == 0 && i > 20 {
			patch = fmt.Sprintf(`{"k%03d":null,"k%03d":null,"k%03d":%q}`, i-20, i-13, i, big+big)
		}
		// External ids past their bound too, whose mark changes the attrs.
		ids := map[string]*string{}
		for j := range 2 {
			ids[fmt.Sprintf("id%03d_%d", i, j)] = &idValue
		}
		pl, err := json.Marshal(ops.ThingPayload{ThingID: "t", ObservedAt: 1, Attrs: jsontext.Value(patch), ExternalIDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		env := &ops.Envelope{V: 1, Op: op, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", EntityID: "t", OpID: fmt.Sprintf("op%03d", i), AcceptedAt: 1, Payload: pl}
		if kept, err = ApplyThing(kept, env, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		if decoded, err = ApplyThing(decoded, env, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		a, b := EncodeThing(nil, kept), EncodeThing(nil, decoded)
		if !bytes.Equal(a, b) {
			t.Fatalf("after operation %d the snapshots differ", i)
		}
		if decoded, err = DecodeThing(b); err != nil { // its count forgotten
			t.Fatal(err)
		}
	}
	if kept.Attrs.Get(ops.TruncatedAttr) == nil || kept.Attrs.size() > MaxAttrsBytes || len(kept.ExternalIDs) >= 600 {
		t.Fatalf("the updates never met the bounds (marked %t, %d bytes, %d external ids)", kept.Attrs.Get(ops.TruncatedAttr) != nil,
			kept.Attrs.size(), len(kept.ExternalIDs))
	}
}

// attrsToTheBound merges members "k0000", "k0001", ... of value value one
// patch at a time until the next would take the attrs past MaxAttrsBytes,
// and returns the attrs before it, checking that the member was left out,
// marked, where the bound says.
func attrsToTheBound(t *testing.T, value string) Attrs {
	t.Helper()
	var cur Attrs
	for i := 0; ; i++ {
		name := fmt.Sprintf("k%04d", i)
		next, err := MergePatch(cur, jsontext.Value(fmt.Sprintf(`{%q:%q}`, name, value)))
		if err != nil {
			t.Fatal(err)
		}
		if next.Get(ops.TruncatedAttr) == nil {
			if next.size() > MaxAttrsBytes-markSize {
				t.Fatalf("attrs grew to %d bytes, past the bound %d", next.size(), MaxAttrsBytes)
			}
			cur = next
			continue
		}
		if s, m := cur.size(), memberSize(name, jsontext.Value(`"`+value+`"`)); s > MaxAttrsBytes-markSize || s+m <= MaxAttrsBytes-markSize {
			t.Fatalf("%s cut at %d bytes, the bound %d", name, s, MaxAttrsBytes)
		}
		if next.Get(name) != nil || len(next) != len(cur)+1 {
			t.Fatalf("the member past the bound was kept (%d members, %d before)", len(next), len(cur))
		}
		return cur
	}
}
