package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// seed004Request is the request example of seed 004 as written, without
// its line numbers. seed004Body turns it into the JSON it stands for.
const seed004Request = `{
 "eventList": [
 {
 // 事件具体信息,非必填,可以用于规则匹配等。
 "data": "{\"info\":\"系统出现异常\",\"advice\":\"请联系管理员\"}",
 // 事件源名称,必填
 "source": "App_DEMO",
 // 事件名称,必填
 "type": "DEMO_EVENT",
 // 事件id,非必填。默认会随机生成一个字符串。
 "id": "45ef4dewdwe1-7c35-447a-bd93-fab****",
 // 事件发生源,非必填。默认为空
 "subject": "qcs::dts:ap-guangzhou:appid12312/uid1250000000:xxx",
 // 事件发生时间,非必填。默认为接受到该事件的时间
 "time": 1615430559146,
 // 事件发生地区,非必填。
 "region": "bj"
 },
 ...
 ],
 "eventBusId": "eb-xxxxxx"
}`

// seed004Body is the seed's request with its comments and its "more
// events" ellipsis removed, and bus in place of "eb-xxxxxx".
func seed004Body(bus string) string {
	var lines []string
	for _, l := range strings.Split(seed004Request, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "//") || t == "..." {
			continue
		}
		lines = append(lines, l)
	}
	body := strings.Join(lines, "\n")
	body = regexp.MustCompile(`\},\s*\]`).ReplaceAllString(body, "}\n ]")
	return strings.Replace(body, "eb-xxxxxx", bus, 1)
}

// seed004Lower is seed004Body with every member name in lower case (the
// provider's documents also spell them so).
func seed004Lower(bus string) string {
	b := seed004Body(bus)
	return strings.NewReplacer(`"eventList"`, `"eventlist"`, `"eventBusId"`, `"eventbusid"`).Replace(b)
}

// eventBus posts a body to the event bus route (no Content-Type, like
// curl --data) with the integration token.
func (it *integ) eventBus(path, token, body string) (int, http.Header, map[string]any) {
	it.t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	s, hdr, b := it.send("POST", path, h, body)
	return s, hdr, decode(it.t, b)
}

func TestEventBusSeedExample(t *testing.T) {
	it := startIntegrations(t, "运维事件总线")
	if !json.Valid([]byte(seed004Body(it.channel))) {
		t.Fatalf("seed body is not JSON: %s", seed004Body(it.channel))
	}

	s, hdr, m := it.eventBus("/v1/event-bus/event/recv", it.token, seed004Body(it.channel))
	if s != 200 {
		t.Fatalf("status %d: %v", s, m)
	}
	evs := m["events"].([]any)
	if len(evs) != 1 || len(m) != 1 {
		t.Fatalf("answer %v", m)
	}
	got := evs[0].(map[string]any)
	recv, err := time.Parse(time.RFC3339, fmt.Sprint(got["recvTimestamp"]))
	if err != nil || time.Since(recv) > time.Minute {
		t.Fatalf("recvTimestamp %v (%v)", got["recvTimestamp"], err)
	}
	delete(got, "recvTimestamp")
	want := map[string]any{
		"data":         map[string]any{"info": "系统出现异常", "advice": "请联系管理员"},
		"id":           "45ef4dewdwe1-7c35-447a-bd93-fab****",
		"source":       "App_DEMO",
		"type":         "DEMO_EVENT",
		"subject":      "qcs::dts:ap-guangzhou:appid12312/uid1250000000:xxx",
		"time":         "2021-03-11T02:42:39.146Z",
		"region":       "bj",
		"eventBusId":   it.channel,
		"eventBusName": "运维事件总线",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("event\n got %v\nwant %v", got, want)
	}
	if hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("content type %q", hdr.Get("Content-Type"))
	}

	events := it.events("")
	if len(events) != 1 {
		t.Fatalf("events %v", events)
	}
	e := events[0]
	if e["state"] != "CLOSED" || e["title"] != "DEMO_EVENT" || e["message"] != "系统出现异常" || e["severity"] != "low" ||
		e["status"] != "occurred" || e["thing_id"] != nil {
		t.Fatalf("event %v", e)
	}
	if at := time.UnixMilli(1615430559146); e["event_time"] != float64(at.UnixMilli()) {
		t.Fatalf("event_time %v", e["event_time"])
	}
	attrs := e["attrs"].(map[string]any)
	if attrs["info"] != "系统出现异常" || attrs["advice"] != "请联系管理员" || attrs["ce.source"] != "App_DEMO" ||
		attrs["ce.id"] != "45ef4dewdwe1-7c35-447a-bd93-fab****" || attrs["ce.region"] != "bj" ||
		attrs["ce.subject"] != "qcs::dts:ap-guangzhou:appid12312/uid1250000000:xxx" {
		t.Fatalf("attrs %v", attrs)
	}
	if len(it.events("CLOSED")) != 1 || len(it.events("ONGOING")) != 0 {
		t.Fatal("the event is not closed")
	}
	history := len(it.history())
	if history != 2 {
		t.Fatalf("history %d, want create and close", history)
	}

	// Resent as is, with lower-case member names, by the channel's name,
	// by the id in lower case, and on the newer route: the same CloudEvent
	// (source+id), nothing new.
	for name, body := range map[string]string{
		"resent":        seed004Body(it.channel),
		"lower-case":    seed004Lower(it.channel),
		"by name":       seed004Body("运维事件总线"),
		"by id, lower":  seed004Body(strings.ToLower(it.channel)),
		"as event name": strings.Replace(seed004Body(it.channel), `"eventBusId": "`+it.channel+`"`, `"eventBusId": ""`, 1),
	} {
		path := "/v1/event-bus/event/recv"
		if name == "by name" {
			path = "/v1/event-bus/recv"
		}
		if name == "as event name" {
			// No bus id: the event's own eventBusName names the channel.
			body = strings.Replace(body, `"region": "bj"`, `"region": "bj", "eventBusName": "运维事件总线"`, 1)
		}
		s, _, m := it.eventBus(path, it.token, body)
		if s != 200 {
			t.Fatalf("%s: %d %v", name, s, m)
		}
		r := m["events"].([]any)[0].(map[string]any)
		if r["id"] != "45ef4dewdwe1-7c35-447a-bd93-fab****" || r["eventBusId"] != it.channel || r["eventBusName"] != "运维事件总线" {
			t.Fatalf("%s: %v", name, r)
		}
		if n := len(it.events("")); n != 1 {
			t.Fatalf("%s: %d events", name, n)
		}
		if n := len(it.history()); n != history {
			t.Fatalf("%s: history %d, want %d", name, n, history)
		}
	}
}

// TestEventBusDefaults covers the members the sender may leave out: an
// absent id is generated (two such events are two Events), an absent time
// is the receive time, and a resent event without time is still the same
// Event although its defaulted time differs.
func TestEventBusDefaults(t *testing.T) {
	it := startIntegrations(t, "bus")
	body := `{"eventList":[{"source":"cron","type":"BACKUP_DONE","level":"warning","eventAliasEn":"Backup finished","data":{"message":"nightly backup ok","size":{"gb":12,"files":[1,2]}}},` +
		`{"source":"cron","type":"BACKUP_DONE"}],"eventBusId":"` + it.channel + `"}`
	before := time.Now()
	s, _, m := it.eventBus("/v1/event-bus/event/recv", it.token, body)
	if s != 200 {
		t.Fatalf("%d %v", s, m)
	}
	evs := m["events"].([]any)
	a, b := evs[0].(map[string]any), evs[1].(map[string]any)
	if a["id"] == "" || a["id"] == b["id"] || a["level"] != "WARNING" || a["eventAliasEn"] != "Backup finished" {
		t.Fatalf("answer %v", evs)
	}
	if _, ok := b["data"]; ok {
		t.Fatalf("no data sent, data answered: %v", b)
	}
	at, err := time.Parse(time.RFC3339Nano, a["time"].(string))
	if err != nil || at.Before(before.Add(-time.Second)) || time.Since(at) > time.Minute {
		t.Fatalf("defaulted time %v", a["time"])
	}
	byTitle := map[string]map[string]any{}
	for _, e := range it.events("CLOSED") {
		byTitle[e["title"].(string)] = e
	}
	e := byTitle["Backup finished"]
	if e == nil || e["severity"] != "normal" || e["message"] != "nightly backup ok" {
		t.Fatalf("events %v", byTitle)
	}
	if attrs := e["attrs"].(map[string]any); attrs["size.gb"] != 12.0 || attrs["size.files"] != "[1,2]" || attrs["ce.level"] != "WARNING" {
		t.Fatalf("attrs %v", attrs)
	}
	if e := byTitle["BACKUP_DONE"]; e == nil || e["severity"] != "low" || e["message"] != "BACKUP_DONE" {
		t.Fatalf("events %v", byTitle)
	}

	// The same id without time, twice: one Event.
	fixed := `{"eventList":[{"source":"cron","type":"T","id":"run-7"}],"eventBusId":"` + it.channel + `"}`
	for range 2 {
		if s, _, m := it.eventBus("/v1/event-bus/recv", it.token, fixed); s != 200 {
			t.Fatalf("%d %v", s, m)
		}
		time.Sleep(5 * time.Millisecond) // another receive time
	}
	if n := len(it.events("")); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
	if n := len(it.history()); n != 6 {
		t.Fatalf("history %d, want 6", n)
	}
}

// TestEventBusResendAnswersTheRecordedEvent: a CloudEvent sent again (the
// same source and id) is the Event recorded the first time, and the
// resend's answer says that Event's time: not the time the resend was
// received, nor one it sent differently. Until 6 December a resend without
// a time answered its own receive time ("…08.234Z" for an Event recorded
// at "…08.233Z"), a time never recorded.
func TestEventBusResendAnswersTheRecordedEvent(t *testing.T) {
	it := startIntegrations(t, "bus")
	batch := func(event string) string {
		return `{"eventList":[` + event + `],"eventBusId":"` + it.channel + `"}`
	}
	answer := func(body string) map[string]any {
		t.Helper()
		s, _, m := it.eventBus("/v1/event-bus/recv", it.token, body)
		if s != 200 {
			t.Fatalf("%d %v", s, m)
		}
		return m["events"].([]any)[0].(map[string]any)
	}
	recorded := func(id string) string {
		t.Helper()
		var found []map[string]any
		for _, e := range it.events("") {
			if e["attrs"].(map[string]any)["ce.id"] == id {
				found = append(found, e)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d Events of %s, want 1", len(found), id)
		}
		return time.UnixMilli(int64(found[0]["event_time"].(float64))).UTC().Format(time.RFC3339Nano)
	}

	// Sent with a time, then again without one.
	if a := answer(batch(`{"source":"s","type":"T1","id":"x10","time":"2025-03-25T21:04:41.5+08:00"}`)); a["time"] != "2025-03-25T21:04:41.5+08:00" {
		t.Fatalf("first answer's time %v, want it as sent", a["time"])
	}
	if b := answer(batch(`{"source":"s","type":"T1","id":"x10"}`)); b["time"] != "2025-03-25T13:04:41.5Z" || recorded("x10") != b["time"] {
		t.Fatalf("resend's time %v, the Event's %s: want the recorded 2025-03-25T13:04:41.5Z", b["time"], recorded("x10"))
	}

	// The tester's case: sent twice without a time.
	a := answer(batch(`{"source":"s","type":"T1","id":"x20"}`))
	b := answer(batch(`{"source":"s","type":"T1","id":"x20"}`))
	if at := recorded("x20"); a["time"] != at || b["time"] != at {
		t.Fatalf("answers' times %v and %v, the Event's %s", a["time"], b["time"], at)
	}
	if n := len(it.history()); n != 4 {
		t.Fatalf("history %d, want a create and a close of each CloudEvent", n)
	}
}

// TestEventBusThingLink links an event whose subject is an existing
// Thing's id, and records one whose subject names no Thing without a link.
func TestEventBusThingLink(t *testing.T) {
	it := startIntegrations(t, "bus")
	host := it.thing("db-1", map[string]any{"type": "HOST"})
	body := `{"eventList":[{"source":"mon","type":"DISK","id":"1","subject":"` + host + `","level":"CRITICAL"},` +
		`{"source":"mon","type":"DISK","id":"2","subject":"no-such-thing"}],"eventBusId":"` + it.channel + `"}`
	for range 2 { // resent: the linked one replays, the unlinked one too
		if s, _, m := it.eventBus("/v1/event-bus/event/recv", it.token, body); s != 200 {
			t.Fatalf("%d %v", s, m)
		}
	}
	links := map[string]any{}
	for _, e := range it.events("CLOSED") {
		links[e["attrs"].(map[string]any)["ce.id"].(string)] = e["thing_id"]
		if e["attrs"].(map[string]any)["ce.id"] == "1" && e["severity"] != "critical" {
			t.Fatalf("event %v", e)
		}
	}
	if len(links) != 2 || links["1"] != host || links["2"] != nil {
		t.Fatalf("links %v", links)
	}
	if n := len(it.history()); n != 1+4 { // the thing, two creates, two closes
		t.Fatalf("history %d", n)
	}
}

// TestEventBusRejections checks every rejection's status and the
// provider's error body: exactly requestId (the X-Request-Id answered),
// code and message. A rejected batch appends nothing.
func TestEventBusRejections(t *testing.T) {
	it := startIntegrations(t, "bus")
	other := startIntegrations(t, "other").channel
	readOnly := it.newToken("events.read")
	ok := `{"source":"s","type":"t","id":"x"}`
	batch := func(events ...string) string {
		return `{"eventList":[` + strings.Join(events, ",") + `],"eventBusId":"` + it.channel + `"}`
	}
	cases := []struct {
		name, token, body string
		status            int
		code, message     string // message: a part of it
	}{
		{"no token", "", batch(ok), 401, "AUTHORIZATION_ERROR", "token"},
		{"wrong token", "pgo1.AAAAAAAAAAAAAAAAAAAAAAAA." + strings.Repeat("0", 64), batch(ok), 401, "AUTHORIZATION_ERROR", "token"},
		{"garbage token", "nope", batch(ok), 401, "AUTHORIZATION_ERROR", "token"},
		{"scope missing", readOnly, batch(ok), 403, "AUTHORIZATION_ERROR", "scope"},
		{"other bus", it.token, strings.Replace(batch(ok), it.channel, other, 1), 403, "AUTHORIZATION_ERROR", "eventBusId"},
		{"other bus by name", it.token, `{"eventList":[{"source":"s","type":"t","eventBusName":"other"}]}`, 403, "AUTHORIZATION_ERROR", "eventBusName"},
		{"no bus", it.token, `{"eventList":[` + ok + `]}`, 400, "INVALID_PARAMETER", "eventBusId is required"},
		{"empty body", it.token, ``, 400, "INVALID_PARAMETER", "empty"},
		{"not json", it.token, `{"eventList":[`, 400, "INVALID_PARAMETER", "not valid JSON"},
		{"not an object", it.token, `[]`, 400, "INVALID_PARAMETER", "object"},
		{"no eventList", it.token, `{"eventBusId":"` + it.channel + `"}`, 400, "INVALID_PARAMETER", "eventList is required"},
		{"empty eventList", it.token, batch(), 400, "INVALID_PARAMETER_VALUE", "eventList must hold 1 to 100 events"},
		{"101 events", it.token, batch(strings.Split(strings.Repeat(ok+"\n", 101), "\n")[:101]...), 400, "INVALID_PARAMETER_VALUE", "got 101"},
		{"unknown member", it.token, batch(`{"source":"s","type":"t","colour":"red"}`), 400, "INVALID_PARAMETER", "eventList[0].colour is an unknown member"},
		{"duplicate member", it.token, batch(`{"source":"s","type":"t","Type":"u"}`), 400, "INVALID_PARAMETER", "duplicate"},
		{"no source", it.token, batch(`{"type":"t"}`), 400, "INVALID_PARAMETER", "eventList[0].source is required"},
		{"no type", it.token, batch(`{"source":"s"}`), 400, "INVALID_PARAMETER", "eventList[0].type is required"},
		{"bad level", it.token, batch(`{"source":"s","type":"t","level":"INFO"}`), 400, "INVALID_PARAMETER_VALUE", "level"},
		{"bad time", it.token, batch(`{"source":"s","type":"t","time":"next tuesday"}`), 400, "INVALID_PARAMETER_VALUE", "time"},
		{"bad data", it.token, batch(`{"source":"s","type":"t","data":[1]}`), 400, "INVALID_PARAMETER_VALUE", "data"},
		{"bad data string", it.token, batch(`{"source":"s","type":"t","data":"not json"}`), 400, "INVALID_PARAMETER_VALUE", "data"},
		{"bad datacontenttype", it.token, batch(`{"source":"s","type":"t","datacontenttype":"text/xml"}`), 400, "INVALID_PARAMETER_VALUE", "datacontenttype"},
		{"bad specversion", it.token, batch(`{"source":"s","type":"t","specversion":"0.3"}`), 400, "INVALID_PARAMETER_VALUE", "specversion"},
		{"wrong type", it.token, batch(`{"source":["s"],"type":"t"}`), 400, "INVALID_PARAMETER_VALUE", "eventList[0].source has the wrong type"},
		{"good then bad", it.token, batch(ok, `{"source":"s","type":"t","level":"LOUD"}`), 400, "INVALID_PARAMETER_VALUE", "eventList[1].level"},
		{"too large", it.token, batch(`{"source":"s","type":"t","data":{"x":"` + strings.Repeat("x", 1<<20) + `"}}`), 413, "INVALID_PARAMETER", "1 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hdr, m := it.eventBus("/v1/event-bus/event/recv", c.token, c.body)
			if s != c.status || m["code"] != c.code || !strings.Contains(fmt.Sprint(m["message"]), c.message) {
				t.Fatalf("got %d %v, want %d %s %q", s, m, c.status, c.code, c.message)
			}
			if len(m) != 3 || m["requestId"] == "" || m["requestId"] != hdr.Get("X-Request-Id") {
				t.Fatalf("error body %v (X-Request-Id %q)", m, hdr.Get("X-Request-Id"))
			}
		})
	}
	// A client's own X-Request-Id is the requestId.
	s, _, b := it.send("POST", "/v1/event-bus/recv", map[string]string{"X-Request-Id": "trace-42"}, batch(ok))
	if m := decode(t, b); s != 401 || m["requestId"] != "trace-42" {
		t.Fatalf("%d %v", s, m)
	}
	if n := len(it.history()); n != 0 {
		t.Fatalf("rejected batches appended %d operations", n)
	}
}

// TestEventBusFullBatch sends the largest batch, one CloudEvent in it
// twice: every other event is recorded once, the repeated one once.
func TestEventBusFullBatch(t *testing.T) {
	it := startIntegrations(t, "bus")
	var events []string
	for i := range 99 {
		events = append(events, fmt.Sprintf(`{"source":"load","type":"TICK","id":"%d","time":%d}`, i, 1_700_000_000_000+i))
	}
	events = append(events, `{"source":"load","type":"TICK","id":"0","time":1700000000000}`)
	body := `{"eventList":[` + strings.Join(events, ",") + `],"eventBusId":"` + it.channel + `"}`
	s, _, m := it.eventBus("/v1/event-bus/event/recv", it.token, body)
	if s != 200 || len(m["events"].([]any)) != 100 {
		t.Fatalf("%d %v", s, m)
	}
	if n := len(it.events("CLOSED")); n != 99 {
		t.Fatalf("%d closed events, want 99", n)
	}
	if n := len(it.history()); n != 198 {
		t.Fatalf("history %d, want 198", n)
	}
}
