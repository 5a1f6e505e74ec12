package entityselector

import "testing"

func TestMatch(t *testing.T) {
	web := &Thing{ID: "h1", Type: "HOST", Title: "Web-01 Frankfurt", Tags: []string{"env:prod", "web"}}
	db := &Thing{ID: "h2", Type: "HOST", Title: "db-01", Tags: []string{"env:staging"}}
	group := &Thing{ID: "g1", Type: "HOST_GROUP", Title: "cloud-burst-hosts"}
	untyped := &Thing{ID: "u1", Title: "no type"}
	// related: h1 is an instance of g1; g1 is pointed at by h1.
	related := func(r *Relationship, th *Thing) bool {
		switch {
		case r.Direction == From && r.Name == "isInstanceOf":
			return th.ID == "h1"
		case r.Direction == To && r.Name == "isInstanceOf":
			return th.ID == "g1"
		}
		return false
	}
	for _, tc := range []struct {
		sel  string
		want map[string]bool // ids matched among web, db, group, untyped
	}{
		{`type(HOST)`, set("h1", "h2")},
		{`type(host)`, set()}, // types are case-sensitive
		{`type(HOST_GROUP)`, set("g1")},
		{`entityId(h2,g1,zz)`, set("h2", "g1")},
		{`type(HOST),entityName(web)`, set("h1")},
		{`type(HOST),entityName(FRANK)`, set("h1")},
		{`type(HOST),caseSensitive(entityName(FRANK))`, set()},
		{`type(HOST),caseSensitive(entityName(Frank))`, set("h1")},
		{`type(HOST),entityName.equals("WEB-01 FRANKFURT")`, set("h1")},
		{`type(HOST),entityName.equals("Web-01")`, set()},
		{`type(HOST),caseSensitive(entityName.equals("web-01 frankfurt"))`, set()},
		{`type(HOST),entityName.startsWith(DB)`, set("h2")},
		{`type(HOST),caseSensitive(entityName.startsWith(DB))`, set()},
		{`type(HOST),entityName.in("x","DB-01","web-01 frankfurt")`, set("h1", "h2")},
		{`type(HOST),caseSensitive(entityName.in("x","DB-01","Web-01 Frankfurt"))`, set("h1")},
		{`type(HOST),tag("env:prod")`, set("h1")},
		{`type(HOST),tag(env)`, set()}, // tags match exactly
		{`type(HOST),tag(web,"env:staging")`, set("h1", "h2")},
		{`type(HOST),not(tag(web))`, set("h2")},
		{`entityId(h1,h2,g1,u1),not(type(HOST))`, set("g1", "u1")},
		{`type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP))`, set("h1")},
		{`type(HOST),not(fromRelationships.isInstanceOf(type(HOST_GROUP)))`, set("h2")},
		{`type(HOST_GROUP),toRelationships.isInstanceOf(type(HOST))`, set("g1")},
		{`type(HOST),fromRelationship.runsOn(type(HOST_GROUP))`, set()},
	} {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.sel, err)
		}
		for _, th := range []*Thing{web, db, group, untyped} {
			if got := sel.Match(th, related); got != tc.want[th.ID] {
				t.Errorf("%s on %s = %v, want %v", tc.sel, th.ID, got, !got)
			}
		}
	}
	sel, _ := Parse(`type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP))`)
	if sel.Match(web, nil) {
		t.Error("a nil Related must hold no relationship")
	}
}

func set(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestNameKeyIsPrefixPreserving(t *testing.T) {
	for _, s := range []string{"Web-01", "ÄÖÜ straße", "İstanbul", "ǅ", "K"} {
		for i := range s { // at every rune boundary
			a, b := s[:i], s[i:]
			if NameKey(a)+NameKey(b) != NameKey(s) {
				t.Errorf("NameKey(%q)+NameKey(%q) != NameKey(%q)", a, b, s)
			}
		}
	}
}
