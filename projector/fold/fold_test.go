package fold

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

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
