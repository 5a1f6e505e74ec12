package dynatrace

import (
	"strings"
	"testing"
)

const now = int64(1_800_000_000_000)

func validate(t *testing.T, body string) (*Report, []Violation) {
	t.Helper()
	r, vs, err := Decode([]byte(body))
	if err != nil {
		t.Fatalf("%s: syntax: %v", body, err)
	}
	if vs != nil {
		return nil, vs
	}
	return Validate(r, now)
}

func TestValidateDefaultsAndMapping(t *testing.T) {
	for _, tc := range []struct {
		body            string
		problem         bool
		start, deadline int64
		severity        string
		attrs           string
	}{
		{`{"eventType":"ERROR_EVENT","title":"x"}`, true, now, now + 15*60_000, "high", ""},
		{`{"eventType":"ERROR_EVENT","title":"x","timeout":null,"startTime":null,"endTime":null,"entitySelector":null,"properties":null}`, true, now, now + 15*60_000, "high", ""},
		{`{"eventType":"AVAILABILITY_EVENT","title":"x","timeout":1000}`, true, now, now + 360*60_000, "critical", ""},
		{`{"eventType":"WARNING","title":"x","startTime":1000,"endTime":5000}`, true, 1000, 5000, "normal", ""},
		{`{"eventType":"CUSTOM_INFO","title":"x","properties":{"n":1.50,"b":true,"s":"v","z":null}}`, false, now, now + 15*60_000, "low", `{"n":"1.50","b":"true","s":"v"}`},
		{`{"eventType":"CUSTOM_ALERT","title":" x ","timeout":30}`, true, now, now + 30*60_000, "high", ""},
		{`{"eventType":"RESOURCE_CONTENTION_EVENT","title":"x"}`, true, now, now + 15*60_000, "normal", ""},
		{`{"eventType":"MARKED_FOR_TERMINATION","title":"x"}`, false, now, now + 15*60_000, "low", ""},
	} {
		r, vs := validate(t, tc.body)
		if vs != nil {
			t.Fatalf("%s: %v", tc.body, vs)
		}
		if r.Problem != tc.problem || r.Start != tc.start || r.Deadline != tc.deadline || r.Severity() != tc.severity || string(r.Attrs()) != tc.attrs || r.Title != "x" {
			t.Errorf("%s: problem %v start %d deadline %d severity %s attrs %s", tc.body, r.Problem, r.Start, r.Deadline, r.Severity(), r.Attrs())
		}
	}
}

func TestValidateViolations(t *testing.T) {
	for _, tc := range []struct{ body, path, contains string }{
		{`{}`, "eventType", "must not be null"},
		{`{"eventType":"CUSTOM_INFO","title":""}`, "title", "must not be empty"},
		{`{"eventType":"custom_info","title":"x"}`, "eventType", "must be one of"},
		{`{"eventType":"CUSTOM_INFO","title":"x","Title":"y"}`, "Title", "unknown member"},
		{`{"eventType":"CUSTOM_INFO","title":"x","title":"y"}`, "title", "duplicate"},
		{`{"eventType":"CUSTOM_INFO","title":"x","timeout":"5"}`, "timeout", "wrong type"},
		{`{"eventType":"CUSTOM_INFO","title":"x","startTime":-1}`, "startTime", "milliseconds"},
		{`{"eventType":"CUSTOM_INFO","title":"x","properties":[]}`, "properties", "object"},
		{`{"eventType":"CUSTOM_INFO","title":"x","properties":{"a":[1]}}`, "properties.a", "string, number or boolean"},
		{`{"eventType":"CUSTOM_INFO","title":"x","properties":{"` + strings.Repeat("k", 101) + `":"v"}}`, "properties." + strings.Repeat("k", 101), "at most 100"},
		{`{"eventType":"CUSTOM_INFO","title":"x","entitySelector":"healthState(\"HEALTHY\"),type(HOST)"}`, "entitySelector", "healthState"},
		// Text that is not Unicode is a violation naming the member, as
		// on every JSON route; it was "Could not map JSON: request body is
		// not valid JSON" until 6 December.
		{"{\"eventType\":\"CUSTOM_INFO\",\"title\":\"x\xff\"}", "title", "not valid UTF-8 (byte 0xff)"},
		{`{"eventType":"CUSTOM_INFO","title":"x","properties":{"k":"\ud800"}}`, "properties.k", `not valid UTF-8 (lone surrogate escape \ud800)`},
		{`{"eventType":"CUSTOM_INFO","title":"x","properties":{"\udc00":"v"}}`, "properties", "a member name is not valid UTF-8"},
	} {
		_, vs := validate(t, tc.body)
		found := false
		for _, v := range vs {
			if v.Path == tc.path && strings.Contains(v.Message, tc.contains) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want %s ~ %q, got %v", tc.body, tc.path, tc.contains, vs)
		}
	}
	props := make([]string, 0, 101)
	for i := range 101 {
		props = append(props, `"k`+strings.Repeat("x", i%50)+string(rune('a'+i%26))+`":"v"`)
	}
	if _, vs := validate(t, `{"eventType":"CUSTOM_INFO","title":"x","properties":{`+strings.Join(props, ",")+`}}`); len(vs) == 0 || vs[0].Path != "properties" {
		t.Errorf("101 properties: %v", vs)
	}
	for _, bad := range []string{`{"eventType":`, "{\"eventType\":\"\xff", `{"title":"\ud800",}`} {
		if _, _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("bad JSON %q: no syntax error", bad)
		}
	}
}

func TestReservedPropertiesAndTimestamps(t *testing.T) {
	for body, want := range map[string]bool{
		`{"eventType":"CUSTOM_INFO","title":"x","properties":{"dt.event.allow_davis_merge":"false"}}`: true,
		`{"eventType":"CUSTOM_INFO","title":"x","properties":{"dt.event.allow_davis_merge":"no"}}`:    false,
		`{"eventType":"CUSTOM_INFO","title":"x","properties":{"dt.entity.host":"h"}}`:                 false,
		`{"eventType":"CUSTOM_INFO","title":"x","properties":{"dtx":"ok"}}`:                           true,
	} {
		r, vs := validate(t, body)
		if vs != nil {
			t.Fatalf("%s: %v", body, vs)
		}
		if (r.MetadataError == "") != want {
			t.Errorf("%s: metadata error %q", body, r.MetadataError)
		}
	}
	for _, tc := range []struct {
		kind  string
		start int64
		ok    bool
	}{
		{"ERROR_EVENT", now - 6*3600_000, true},
		{"ERROR_EVENT", now - 6*3600_000 - 1, false},
		{"ERROR_EVENT", now + 5*60_000 + 1, false},
		{"CUSTOM_INFO", now - 29*24*3600_000, true},
		{"CUSTOM_INFO", now - 31*24*3600_000, false},
		{"CUSTOM_INFO", now + 8*24*3600_000, false},
	} {
		r := &Report{EventType: tc.kind, Problem: eventTypes[tc.kind], Start: tc.start}
		if r.TimestampsValid(now) != tc.ok {
			t.Errorf("%s at %d: valid %v", tc.kind, tc.start-now, !tc.ok)
		}
	}
}
