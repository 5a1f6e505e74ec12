package entityselector

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	hostGroup := &Selector{Criteria: []Criterion{&TypeIs{"HOST_GROUP"}, &NameMatch{Op: NameContains, Values: []string{"cloud-burst-hosts"}}}}
	for _, tc := range []struct {
		name, in string
		want     *Selector
	}{
		{"seed 003 relationship", `type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP),entityName(cloud-burst-hosts))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &Relationship{Direction: From, Name: "isInstanceOf", Inner: hostGroup}}}},
		{"seed 003 equals", `type(SERVICE),entityName.equals(BookingService)`,
			&Selector{Criteria: []Criterion{&TypeIs{"SERVICE"}, &NameMatch{Op: NameEquals, Values: []string{"BookingService"}}}}},
		{"plural from", `type(HOST),fromRelationships.isInstanceOf(type(HOST_GROUP),entityName(cloud-burst-hosts))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &Relationship{Direction: From, Name: "isInstanceOf", Inner: hostGroup}}}},
		{"to singular", `type(HOST_GROUP),toRelationship.isInstanceOf(entityId(h1))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST_GROUP"}, &Relationship{Direction: To, Name: "isInstanceOf",
				Inner: &Selector{Criteria: []Criterion{&EntityIDIn{[]string{"h1"}}}}}}}},
		{"to plural", `type(HOST_GROUP),toRelationships.isInstanceOf(entityId(h1))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST_GROUP"}, &Relationship{Direction: To, Name: "isInstanceOf",
				Inner: &Selector{Criteria: []Criterion{&EntityIDIn{[]string{"h1"}}}}}}}},
		{"quoted type", `type("HOST")`, &Selector{Criteria: []Criterion{&TypeIs{"HOST"}}}},
		{"entityId list", `entityId("HOST-1", "HOST-2",HOST-3)`,
			&Selector{Criteria: []Criterion{&EntityIDIn{[]string{"HOST-1", "HOST-2", "HOST-3"}}}}},
		{"startsWith", `type(HOST),entityName.startsWith("web")`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &NameMatch{Op: NameStartsWith, Values: []string{"web"}}}}},
		{"in", `type(HOST),entityName.in("a","b c")`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &NameMatch{Op: NameIn, Values: []string{"a", "b c"}}}}},
		{"caseSensitive", `type(HOST),caseSensitive(entityName.equals("Web"))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &NameMatch{Op: NameEquals, Values: []string{"Web"}, CaseSensitive: true}}}},
		{"caseSensitive contains", `type(HOST),caseSensitive(entityName(eb))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &NameMatch{Op: NameContains, Values: []string{"eb"}, CaseSensitive: true}}}},
		{"tags", `type(HOST),tag("env:prod", "[AWS]team:core",solo)`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &TagIn{[]string{"env:prod", "[AWS]team:core", "solo"}}}}},
		{"not", `type(HOST),not(tag(old))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &Not{&TagIn{[]string{"old"}}}}}},
		{"not not", `type(HOST),not(not(entityId(x)))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &Not{&Not{&EntityIDIn{[]string{"x"}}}}}}},
		{"not relationship", `type(HOST),not(toRelationship.runsOn(type(PROCESS)))`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &Not{&Relationship{Direction: To, Name: "runsOn",
				Inner: &Selector{Criteria: []Criterion{&TypeIs{"PROCESS"}}}}}}}},
		{"quoted specials", `type(HOST),entityName.equals("a, (b) ~"c~" ~~d")`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &NameMatch{Op: NameEquals, Values: []string{`a, (b) "c" ~d`}}}}},
		{"unquoted tilde is literal", `type(A~B)`, &Selector{Criteria: []Criterion{&TypeIs{"A~B"}}}},
		{"whitespace around tokens", " type ( HOST ) ,\n\tentityName.equals ( \" x \" ) , tag( a b ) ",
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &NameMatch{Op: NameEquals, Values: []string{" x "}}, &TagIn{[]string{"a b"}}}}},
		{"nested relationships", `type(PROCESS),fromRelationship.runsOn(type(HOST),fromRelationships.isInstanceOf(entityId(g1)))`,
			&Selector{Criteria: []Criterion{&TypeIs{"PROCESS"}, &Relationship{Direction: From, Name: "runsOn", Inner: &Selector{Criteria: []Criterion{
				&TypeIs{"HOST"}, &Relationship{Direction: From, Name: "isInstanceOf", Inner: &Selector{Criteria: []Criterion{&EntityIDIn{[]string{"g1"}}}}}}}}}}},
		{"entityId anchors with negated type", `not(type(HOST)),entityId(a)`,
			&Selector{Criteria: []Criterion{&Not{&TypeIs{"HOST"}}, &EntityIDIn{[]string{"a"}}}}},
		{"unicode", `type(HOST),entityName("Überwachung ✓")`,
			&Selector{Criteria: []Criterion{&TypeIs{"HOST"}, &NameMatch{Op: NameContains, Values: []string{"Überwachung ✓"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse(%q)\n got %s\nwant %s", tc.in, got, tc.want)
			}
			again, err := Parse(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("canonical form %q does not parse back: %v", got.String(), err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	deep := "type(A)," + strings.Repeat("not(", MaxDepth) + "type(A)" + strings.Repeat(")", MaxDepth)
	deeper := strings.Repeat("not(", MaxDepth+1) + "type(A)" + strings.Repeat(")", MaxDepth+1)
	many := "entityId(" + strings.Repeat("a,", MaxValues) + "a)"
	for _, tc := range []struct {
		name, in string
		msg      string // a substring of the message
		offset   int    // -1: not checked
	}{
		{"empty", "", "entitySelector is empty", 0},
		{"blank", "   ", "entitySelector is empty", 3},
		{"no anchor", `entityName(x)`, needsAnchor, 0},
		{"negated anchor only", `not(type(HOST)),tag(a)`, needsAnchor, 0},
		{"no inner anchor", `type(HOST),fromRelationship.isInstanceOf(entityName(x))`,
			"fromRelationship.isInstanceOf(...): " + needsAnchor, 41},
		{"no inner anchor to", `type(HOST),toRelationships.runsOn(tag(x))`, "toRelationships.runsOn(...): " + needsAnchor, -1},
		{"mzName", `type(HOST),mzName("prod")`, `criterion "mzName" is not supported; supported: type, entityId, entityName, entityName.equals, entityName.startsWith, entityName.in, caseSensitive, tag, not, fromRelationship(s).<rel>, toRelationship(s).<rel>`, 11},
		{"mzId", `type(HOST),mzId(123)`, `criterion "mzId" is not supported`, 11},
		{"healthState", `type(HOST),healthState("HEALTHY")`, `criterion "healthState" is not supported`, -1},
		{"firstSeenTms", `type(HOST),firstSeenTms.gte(1)`, `criterion "firstSeenTms.gte" is not supported`, -1},
		{"entityAttr", `type(HOST),osType("LINUX")`, `criterion "osType" is not supported`, -1},
		{"unknown tag form", `type(HOST),tag.key(x)`, `criterion "tag.key" is not supported`, -1},
		{"unknown name form", `type(HOST),entityName.contains(x)`, `criterion "entityName.contains" is not supported`, -1},
		{"names are case-sensitive", `TYPE(HOST)`, `criterion "TYPE" is not supported`, 0},
		{"unsupported inside not", `type(HOST),not(mzName(a))`, `criterion "mzName" is not supported`, 15},
		{"unsupported inside relationship", `type(HOST),toRelationship.x(type(A),mzName(a))`, `criterion "mzName" is not supported`, -1},
		{"relationship without name", `type(HOST),fromRelationship(type(A))`, "fromRelationship needs a relationship name", 11},
		{"relationship bad name", `type(HOST),toRelationship.a.b(type(A))`, `toRelationship needs a relationship name`, -1},
		{"type two values", `type(A,B)`, "type(...) takes exactly one value, got 2", 0},
		{"equals two values", `type(A),entityName.equals(a,b)`, "entityName.equals(...) takes exactly one value", -1},
		{"empty value", `type()`, "type(...): value 1 is empty", 5},
		{"empty quoted value", `type(A),tag("a","")`, "tag(...): value 2 is empty", 16},
		{"blank unquoted value", `entityId(a,  )`, "entityId(...): value 2 is empty", -1},
		{"too many values", many, "entityId(...) takes at most 100 values", -1},
		{"unterminated quote", `type("HOST)`, "type(...): quoted value is missing its closing quote", 5},
		{"bad escape", `type("a~b")`, `type(...): "~" in a quoted value must be followed`, 7},
		{"unquoted paren", `type(HOST),entityName(a(b))`, "entityName(...): an unquoted value may not contain '('", 23},
		{"unquoted quote", `type(a"b")`, `type(...): an unquoted value may not contain '"'`, 6},
		{"control char", "type(\"a\x01\")", "type(...): value holds control character", 7},
		{"tab inside unquoted", "type(a\tb)", "type(...): value holds a control character", -1},
		{"missing paren", `type(HOST`, `type( is missing its ")"`, 4},
		{"missing paren relationship", `type(A),fromRelationship.r(type(B)`, `fromRelationship.r( is missing its ")"`, -1},
		{"missing open paren", `type HOST`, `criterion "type" needs "(" after its name`, 5},
		{"stray close", `type(A))`, `unexpected ")"`, 7},
		{"trailing comma", `type(A),`, `expected a criterion after ","`, 8},
		{"double comma", `type(A),,tag(a)`, `expected a criterion such as type(...), found ','`, 8},
		{"junk after criterion", `type(A) tag(b)`, `expected "," or ")" after type(...), found 't'`, 8},
		{"junk after value", `type("A" B)`, `type(...): expected "," or ")" after value 1, found 'B'`, 9},
		{"not two criteria", `type(A),not(tag(a),tag(b))`, "not(...) takes exactly one criterion", -1},
		{"not empty", `type(A),not()`, `expected a criterion such as type(...), found ')'`, -1},
		{"caseSensitive of type", `caseSensitive(type(A))`, "caseSensitive(...) applies only to entityName criteria, not to type(...)", -1},
		{"nesting", deeper, "not(...) nests deeper than 10 levels", -1},
		{"too long", "type(" + strings.Repeat("a", MaxLen) + ")", "longer than 10000 bytes", MaxLen},
		{"invalid utf-8", "type(\xff)", "not valid UTF-8", 5},
		{"whitespace in name", "type(A),entityName . equals(x)", `criterion "entityName" needs "("`, -1},
		{"long unsupported name is clipped", "type(A)," + strings.Repeat("z", 200) + "(x)", "…\" is not supported", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error %q", tc.in, sel, tc.msg)
			}
			if !strings.Contains(err.Message, tc.msg) {
				t.Fatalf("Parse(%q): message %q, want it to contain %q", tc.in, err.Message, tc.msg)
			}
			if tc.offset >= 0 && err.Offset != tc.offset {
				t.Fatalf("Parse(%q): offset %d, want %d (%s)", tc.in, err.Offset, tc.offset, err.Message)
			}
			if !strings.Contains(err.Error(), err.Message) {
				t.Fatalf("Error() %q omits the message", err.Error())
			}
		})
	}
	if _, err := Parse(deep); err != nil {
		t.Fatalf("nesting of exactly %d levels: %v", MaxDepth, err)
	}
	if _, err := Parse("entityId(" + strings.Repeat("a,", MaxValues-1) + "a)"); err != nil {
		t.Fatalf("%d values: %v", MaxValues, err)
	}
}

func TestTopTypesAndRelationships(t *testing.T) {
	sel, err := Parse(`type(HOST),not(type(X)),type(HOST),type(B),not(fromRelationship.r(type(C),toRelationship.q(type(D)))),toRelationship.s(type(E))`)
	if err != nil {
		t.Fatal(err)
	}
	if got := sel.TopTypes(); !reflect.DeepEqual(got, []string{"HOST", "B"}) {
		t.Fatalf("TopTypes = %v", got)
	}
	rels := sel.Relationships()
	if len(rels) != 2 || rels[0].Name != "r" || rels[1].Name != "s" {
		t.Fatalf("Relationships = %v", rels)
	}
}
