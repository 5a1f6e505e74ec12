package eventbus

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// seedBody is the request example of seed 004, comments and the "..."
// removed, the bus id replaced.
const seedBody = `{
  "eventList": [
    {
      "data": "{\"info\":\"系统出现异常\",\"advice\":\"请联系管理员\"}",
      "source": "App_DEMO",
      "type": "DEMO_EVENT",
      "id": "45ef4dewdwe1-7c35-447a-bd93-fab****",
      "subject": "qcs::dts:ap-guangzhou:appid12312/uid1250000000:xxx",
      "time": 1615430559146,
      "region": "bj"
    }
  ],
  "eventBusId": "eb-xxxxxx"
}`

// seedLower is seedBody with every member name in lower case.
const seedLower = `{
  "eventlist": [
    {
      "data": "{\"info\":\"系统出现异常\",\"advice\":\"请联系管理员\"}",
      "source": "App_DEMO",
      "type": "DEMO_EVENT",
      "id": "45ef4dewdwe1-7c35-447a-bd93-fab****",
      "subject": "qcs::dts:ap-guangzhou:appid12312/uid1250000000:xxx",
      "time": 1615430559146,
      "region": "bj"
    }
  ],
  "eventbusid": "eb-xxxxxx"
}`

func mustDecode(t *testing.T, body string) *Batch {
	t.Helper()
	b, err := Decode([]byte(body))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return b
}

func TestDecodeSeed(t *testing.T) {
	for name, body := range map[string]string{"camelCase": seedBody, "lower-case": seedLower} {
		t.Run(name, func(t *testing.T) {
			b := mustDecode(t, body)
			if b.EventBusID != "eb-xxxxxx" || len(b.Events) != 1 {
				t.Fatalf("batch %+v", b)
			}
			e := b.Events[0]
			if e.Source != "App_DEMO" || e.Type != "DEMO_EVENT" || e.ID != "45ef4dewdwe1-7c35-447a-bd93-fab****" ||
				e.Subject != "qcs::dts:ap-guangzhou:appid12312/uid1250000000:xxx" || e.Region != "bj" {
				t.Fatalf("event %+v", e)
			}
			if !e.Time.Equal(time.UnixMilli(1615430559146)) || e.TimeText != "" {
				t.Fatalf("time %v %q", e.Time, e.TimeText)
			}
			if string(e.Data) != `{"info":"系统出现异常","advice":"请联系管理员"}` {
				t.Fatalf("data %s", e.Data)
			}
		})
	}
}

func TestDecodeMemberNames(t *testing.T) {
	// Every member in both of the provider's spellings, and an odd one.
	camel := `{"eventList":[{"source":"s","type":"t","resourceType":"rt","accountId":"a","eventBusId":"b","eventBusName":"n",` +
		`"eventSourceAlias":"sa","eventAlias":"ea","eventAliasEn":"een","recvTimestamp":"r","specversion":"1.0","datacontenttype":"application/json"}],"eventBusId":"top"}`
	lower := strings.ToLower(camel)
	odd := strings.ReplaceAll(camel, `"eventAliasEn"`, `"EVENTALIASEN"`)
	for _, body := range []string{camel, odd} {
		e := mustDecode(t, body).Events[0]
		if e.ResourceType != "rt" || e.AccountID != "a" || e.EventBusID != "b" || e.EventBusName != "n" ||
			e.EventSourceAlias != "sa" || e.EventAlias != "ea" || e.EventAliasEn != "een" || e.RecvTimestamp != "r" ||
			e.SpecVersion != "1.0" || e.DataContentType != "application/json" {
			t.Fatalf("%s: %+v", body, e)
		}
	}
	b := mustDecode(t, lower)
	if e := b.Events[0]; b.EventBusID != "top" || e.EventAliasEn != "een" || e.ResourceType != "rt" {
		t.Fatalf("lower: %+v", b)
	}
}

// nested is a data object that nests objects and arrays depth levels deep
// (depth >= 1), with brackets and an escaped quote inside its strings,
// which do not count.
func nested(depth int) string {
	var b strings.Builder
	b.WriteString(`{"s":"[{\\\"","a":`)
	for i := 1; i < depth; i++ {
		if i%2 == 1 {
			b.WriteString(`[`)
		} else {
			b.WriteString(`{"k":`)
		}
	}
	b.WriteString(`"]}"`)
	for i := depth - 1; i >= 1; i-- {
		if i%2 == 1 {
			b.WriteString(`]`)
		} else {
			b.WriteString(`}`)
		}
	}
	b.WriteString(`}`)
	return b.String()
}

// quoted is s as a JSON string.
func quoted(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestDataDepth(t *testing.T) {
	for _, depth := range []int{1, 2, 3, MaxDataDepth} {
		if got := nestingDepth(jsontext.Value(nested(depth))); got != depth {
			t.Fatalf("nestingDepth(nested(%d)) = %d", depth, got)
		}
		for _, data := range []string{nested(depth), quoted(nested(depth))} {
			e := mustDecode(t, `{"eventList":[{"source":"s","type":"t","data":`+data+`}]}`).Events[0]
			if nestingDepth(e.Data) != depth {
				t.Fatalf("depth %d: data %.60q...", depth, e.Data)
			}
		}
	}
}

func TestDecodeData(t *testing.T) {
	cases := []struct{ data, want string }{
		{`{"a":1,"b":{"c":"d"}}`, `{"a":1,"b":{"c":"d"}}`},
		{`{ "a" : 1 }`, `{"a":1}`},
		{`"{\"a\": 1}"`, `{"a":1}`},
		{`" {\"a\":1} "`, `{"a":1}`},
		{`""`, ``},
		{`"   "`, ``},
		{`null`, ``},
		{`{}`, ``},
		{`"{}"`, ``},
	}
	for _, c := range cases {
		e := mustDecode(t, `{"eventList":[{"source":"s","type":"t","data":`+c.data+`}]}`).Events[0]
		if string(e.Data) != c.want {
			t.Errorf("data %s: got %q, want %q", c.data, e.Data, c.want)
		}
	}
	if e := mustDecode(t, `{"eventList":[{"source":"s","type":"t"}]}`).Events[0]; e.Data != nil {
		t.Errorf("absent data: %q", e.Data)
	}
}

func TestDecodeTime(t *testing.T) {
	utc := func(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, s); return t }
	cases := []struct {
		raw      string
		want     time.Time
		wantText string
	}{
		{`"2020-11-19T21:04:41Z"`, utc("2020-11-19T21:04:41Z"), "2020-11-19T21:04:41Z"},
		{`"2020-11-19T21:04:41+08:00"`, utc("2020-11-19T13:04:41Z"), "2020-11-19T21:04:41+08:00"},
		{`"2023-01-01T00:00:00+0800"`, utc("2022-12-31T16:00:00Z"), "2023-01-01T00:00:00+0800"},
		{`"2023-01-01T00:00:00.250+0800"`, utc("2022-12-31T16:00:00.25Z"), "2023-01-01T00:00:00.250+0800"},
		{`"2020-11-19T21:04:41.123456Z"`, utc("2020-11-19T21:04:41.123456Z"), "2020-11-19T21:04:41.123456Z"},
		{`1615430559146`, time.UnixMilli(1615430559146), ""},
		{`1615430559`, time.Unix(1615430559, 0), ""},
		{`"1615430559146"`, time.UnixMilli(1615430559146), ""},
		{`"1615430559"`, time.Unix(1615430559, 0), ""},
		{`""`, time.Time{}, ""},
		{`null`, time.Time{}, ""},
	}
	for _, c := range cases {
		e := mustDecode(t, `{"eventList":[{"source":"s","type":"t","time":`+c.raw+`}]}`).Events[0]
		if !e.Time.Equal(c.want) || e.TimeText != c.wantText {
			t.Errorf("time %s: got %v %q, want %v %q", c.raw, e.Time, e.TimeText, c.want, c.wantText)
		}
	}
}

func TestLevelSeverity(t *testing.T) {
	cases := map[string]string{
		"CRITICAL": ops.SeverityCritical, "critical": ops.SeverityCritical, "MAJOR": ops.SeverityHigh,
		"Major": ops.SeverityHigh, "WARNING": ops.SeverityNormal, "warning": ops.SeverityNormal,
		"NOTICE": ops.SeverityLow, " notice ": ops.SeverityLow, "": ops.SeverityLow,
	}
	for level, want := range cases {
		e := mustDecode(t, `{"eventList":[{"source":"s","type":"t","level":"`+level+`"}]}`).Events[0]
		if got := e.SeverityOf(); got != want {
			t.Errorf("level %q: severity %q, want %q", level, got, want)
		}
		if level != "" && e.Level != strings.ToUpper(strings.TrimSpace(level)) {
			t.Errorf("level %q kept as %q", level, e.Level)
		}
	}
	// A PushGo severity (the CloudEvents extension) overrides the level.
	e := Event{Source: "s", Type: "t", Level: "critical", Severity: "Normal"}
	if err := e.Check(""); err != nil {
		t.Fatal(err)
	}
	if e.SeverityOf() != ops.SeverityNormal {
		t.Fatalf("severity %q", e.SeverityOf())
	}
}

func TestDecodeRejections(t *testing.T) {
	ev := func(members string) string { return `{"eventList":[{"source":"s","type":"t"` + members + `}]}` }
	many := `{"eventList":[` + strings.TrimSuffix(strings.Repeat(`{"source":"s","type":"t"},`, MaxEvents+1), ",") + `]}`
	long := strings.Repeat("x", maxText+1)
	cases := []struct {
		name, body string
		code       Code
		field      string // must appear in the message
	}{
		{"empty", ``, InvalidParameter, "empty"},
		{"blank", " \n", InvalidParameter, "empty"},
		{"not json", `{"eventList":`, InvalidParameter, "not valid JSON"},
		// Text that is not Unicode names its member (it was "request body
		// is not valid JSON" until 6 December); malformed JSON does not.
		{"invalid utf8", "{\"eventList\":[{\"source\":\"\xff\",\"type\":\"t\"}]}", InvalidParameter, "eventList[0].source is not valid UTF-8 (byte 0xff)"},
		{"lone surrogate in a data name", `{"eventList":[{"source":"s","type":"t","data":{"\udc00":1}}]}`, InvalidParameter,
			`eventList[0].data holds a member name that is not valid UTF-8 (lone surrogate escape \udc00)`},
		{"invalid utf8 in a top-level name", "{\"\xff\":1}", InvalidParameter, "request body holds a member name that is not valid UTF-8"},
		{"duplicate before invalid utf8", "{\"eventList\":[{\"source\":\"s\",\"source\":\"\xff\",\"type\":\"t\"}]}", InvalidParameter, "eventList[0].source is a duplicate member"},
		{"invalid utf8, unterminated", "{\"eventList\":[{\"source\":\"\xff", InvalidParameter, "not valid JSON"},
		{"array body", `[1]`, InvalidParameter, "JSON object"},
		{"trailing data", `{"eventList":[]} {}`, InvalidParameter, "not valid JSON"},
		{"no eventList", `{"eventBusId":"b"}`, InvalidParameter, "eventList is required"},
		{"null eventList", `{"eventList":null}`, InvalidParameter, "eventList is required"},
		{"empty eventList", `{"eventList":[]}`, InvalidParameterValue, "eventList must hold 1 to 100 events, got 0"},
		{"too many events", many, InvalidParameterValue, "eventList must hold 1 to 100 events, got 101"},
		{"eventList not array", `{"eventList":{}}`, InvalidParameterValue, "eventList has the wrong type"},
		{"event not object", `{"eventList":["x"]}`, InvalidParameterValue, "eventList[0] must be a JSON object"},
		{"unknown top member", `{"eventList":[{"source":"s","type":"t"}],"bogus":1}`, InvalidParameter, "bogus is an unknown member"},
		{"unknown event member", ev(`,"bogus":1`), InvalidParameter, "eventList[0].bogus is an unknown member"},
		{"duplicate member", ev(`,"source":"again"`), InvalidParameter, "eventList[0].source is a duplicate member"},
		{"duplicate in two spellings", ev(`,"Source":"again"`), InvalidParameter, "duplicate member"},
		{"duplicate top member", `{"eventList":[{"source":"s","type":"t"}],"eventBusId":"a","eventbusid":"b"}`, InvalidParameter, "duplicate"},
		{"duplicate in data", ev(`,"data":{"a":1,"a":2}`), InvalidParameter, "duplicate"},
		{"source missing", `{"eventList":[{"type":"t"}]}`, InvalidParameter, "eventList[0].source is required"},
		{"source blank", `{"eventList":[{"source":"  ","type":"t"}]}`, InvalidParameter, "eventList[0].source is required"},
		{"type missing", `{"eventList":[{"source":"s"}]}`, InvalidParameter, "eventList[0].type is required"},
		{"type null", `{"eventList":[{"source":"s","type":null}]}`, InvalidParameter, "eventList[0].type is required"},
		{"source wrong type", `{"eventList":[{"source":5,"type":"t"}]}`, InvalidParameterValue, "eventList[0].source has the wrong type (number)"},
		{"eventBusId wrong type", `{"eventList":[{"source":"s","type":"t"}],"eventBusId":1}`, InvalidParameterValue, "eventBusId has the wrong type"},
		{"second event bad", `{"eventList":[{"source":"s","type":"t"},{"source":"s"}]}`, InvalidParameter, "eventList[1].type is required"},
		{"specversion", ev(`,"specversion":"0.3"`), InvalidParameterValue, "eventList[0].specversion"},
		{"datacontenttype", ev(`,"datacontenttype":"text/plain"`), InvalidParameterValue, "eventList[0].datacontenttype"},
		{"level", ev(`,"level":"INFO"`), InvalidParameterValue, "eventList[0].level must be one of"},
		{"level number", ev(`,"level":3`), InvalidParameterValue, "eventList[0].level has the wrong type"},
		{"time words", ev(`,"time":"yesterday"`), InvalidParameterValue, "eventList[0].time"},
		{"time float", ev(`,"time":1615430559.5`), InvalidParameterValue, "eventList[0].time"},
		{"time negative", ev(`,"time":-1`), InvalidParameterValue, "eventList[0].time"},
		{"time bool", ev(`,"time":true`), InvalidParameterValue, "eventList[0].time"},
		{"time bad date", ev(`,"time":"2020-13-01T00:00:00Z"`), InvalidParameterValue, "eventList[0].time"},
		{"time before 1970", ev(`,"time":"1969-12-31T23:59:59Z"`), InvalidParameterValue, "eventList[0].time must not be before 1970"},
		{"time after 9999", ev(`,"time":253402300800`), InvalidParameterValue, "eventList[0].time"},
		{"data number", ev(`,"data":5`), InvalidParameterValue, "eventList[0].data"},
		{"data array", ev(`,"data":[1]`), InvalidParameterValue, "eventList[0].data"},
		{"data string not json", ev(`,"data":"hello"`), InvalidParameterValue, "eventList[0].data holds a string that is not valid JSON"},
		{"data string array", ev(`,"data":"[1,2]"`), InvalidParameterValue, "eventList[0].data must be a JSON object"},
		{"data string duplicate", ev(`,"data":"{\"a\":1,\"a\":2}"`), InvalidParameterValue, "eventList[0].data"},
		{"data too deep", ev(`,"data":` + nested(MaxDataDepth+1)), InvalidParameterValue, "eventList[0].data nests objects and arrays deeper than 1000 levels"},
		{"data string too deep", ev(`,"data":` + quoted(nested(MaxDataDepth+1))), InvalidParameterValue, "eventList[0].data nests"},
		// Near the JSON decoder's own limit: a string-held data is decoded
		// on its own, so only the bound stops it.
		{"data string far too deep", ev(`,"data":` + quoted(nested(9998))), InvalidParameterValue, "eventList[0].data nests"},
		{"id too long", ev(`,"id":"` + long + `"`), InvalidParameterValue, "eventList[0].id must be at most 1024 characters"},
		{"bus name too long", ev(`,"eventBusName":"` + long + `"`), InvalidParameterValue, "eventList[0].eventBusName"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Decode([]byte(c.body))
			if err == nil {
				t.Fatalf("accepted: %+v", b)
			}
			if err.Code != c.code || !strings.Contains(err.Message(), c.field) {
				t.Fatalf("got %s %q, want %s containing %q", err.Code, err.Message(), c.code, c.field)
			}
		})
	}
}

func TestResolveBus(t *testing.T) {
	ch := ids.NewChannelID()
	other := ids.NewChannelID()
	cases := []struct {
		name, body string
		code       Code // "" accepted
	}{
		{"top id", `{"eventList":[{"source":"s","type":"t"}],"eventBusId":"` + ch + `"}`, ""},
		{"top id lower-case", `{"eventList":[{"source":"s","type":"t"}],"eventBusId":"` + strings.ToLower(ch) + `"}`, ""},
		{"top name", `{"eventList":[{"source":"s","type":"t"}],"eventBusId":"ops bus"}`, ""},
		{"event id", `{"eventList":[{"source":"s","type":"t","eventBusId":"` + ch + `"}]}`, ""},
		{"event name", `{"eventList":[{"source":"s","type":"t","eventBusName":"ops bus"}]}`, ""},
		{"event id over top", `{"eventList":[{"source":"s","type":"t","eventBusId":"` + ch + `"}],"eventBusId":"` + other + `"}`, ""},
		{"top id over event name", `{"eventList":[{"source":"s","type":"t","eventBusName":"elsewhere"}],"eventBusId":"` + ch + `"}`, ""},
		{"none", `{"eventList":[{"source":"s","type":"t"}]}`, InvalidParameter},
		{"one event without", `{"eventList":[{"source":"s","type":"t","eventBusId":"` + ch + `"},{"source":"s","type":"t"}]}`, InvalidParameter},
		{"other id", `{"eventList":[{"source":"s","type":"t"}],"eventBusId":"` + other + `"}`, AuthorizationError},
		{"other name", `{"eventList":[{"source":"s","type":"t","eventBusName":"Ops Bus"}]}`, AuthorizationError},
		{"event other id over top", `{"eventList":[{"source":"s","type":"t","eventBusId":"eb-xxxxxx"}],"eventBusId":"` + ch + `"}`, AuthorizationError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mustDecode(t, c.body).ResolveBus(ch, "ops bus")
			switch {
			case c.code == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case c.code != "" && (err == nil || err.Code != c.code):
				t.Fatalf("got %v, want %s", err, c.code)
			}
			if c.code == InvalidParameter && err.Message() != "eventBusId is required" {
				t.Fatalf("message %q", err.Message())
			}
		})
	}
}

// validate runs the occurrence through the ops validation the route uses.
func validate(t *testing.T, o Occurrence) (*ops.Validated, *ops.Validated) {
	t.Helper()
	create, aerr := ops.ValidateIntegrationEvent(ops.EventCreate, &o.Create)
	if aerr != nil {
		t.Fatalf("create: %v", aerr)
	}
	closeOp, aerr := ops.ValidateIntegrationEvent(ops.EventClose, &o.Close)
	if aerr != nil {
		t.Fatalf("close: %v", aerr)
	}
	return create, closeOp
}

func attrsOf(t *testing.T, v jsontext.Value) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		t.Fatalf("attrs %s: %v", v, err)
	}
	return m
}

func TestOccurrenceSeed(t *testing.T) {
	ch := ids.NewChannelID()
	received := time.Date(2025, 3, 25, 8, 0, 0, 0, time.UTC)
	e := mustDecode(t, seedBody).Events[0]
	o := e.Occurrence(ch, received)
	create, closeOp := validate(t, o)

	if !ids.ValidOpID(o.OpID) || !strings.HasPrefix(o.OpID, "eb:") || len(o.OpID) != 43 {
		t.Fatalf("op_id %q", o.OpID)
	}
	if o.OpID != OpID(ch, "App_DEMO", "45ef4dewdwe1-7c35-447a-bd93-fab****") || o.OpID == OpID(ch, "App_DEMO", "other") {
		t.Fatal("op_id is not source+id")
	}
	if *o.Close.OpID != o.OpID+":close" || *o.Close.EventID != o.EventID ||
		o.EventID != ids.DeriveEntityID(ch, string(ops.EventCreate), o.OpID) {
		t.Fatalf("close %+v", o.Close)
	}
	p := create.Payload.(*ops.EventPayload)
	if p.Title != "DEMO_EVENT" || p.Status != "occurred" || p.Message != "系统出现异常" || p.Severity != ops.SeverityLow ||
		p.EventTime != 1615430559146 || *p.StartedAt != 1615430559146 || p.ThingID != "" {
		t.Fatalf("create payload %+v", p)
	}
	cp := closeOp.Payload.(*ops.EventPayload)
	if cp.EventTime != 1615430559146 || *cp.EndedAt != 1615430559146 || cp.EventID != o.EventID {
		t.Fatalf("close payload %+v", cp)
	}
	want := map[string]any{
		"info": "系统出现异常", "advice": "请联系管理员",
		"ce.id": "45ef4dewdwe1-7c35-447a-bd93-fab****", "ce.source": "App_DEMO", "ce.type": "DEMO_EVENT",
		"ce.subject": "qcs::dts:ap-guangzhou:appid12312/uid1250000000:xxx", "ce.region": "bj",
	}
	got := attrsOf(t, p.Attrs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attrs %v, want %v", got, want)
	}

	// The same event decoded again translates to the same operations.
	again := mustDecode(t, seedLower).Events[0].Occurrence(ch, received.Add(time.Hour))
	c2, _ := validate(t, again)
	if c2.BodyHash != create.BodyHash || again.OpID != o.OpID {
		t.Fatal("the resent event is not the same operation")
	}
}

func TestOccurrenceMapping(t *testing.T) {
	ch := ids.NewChannelID()
	received := time.UnixMilli(1_700_000_000_123)
	decode := func(members string) Event {
		return mustDecode(t, `{"eventList":[{"source":"src","type":"the.type","id":"1"`+members+`}]}`).Events[0]
	}
	t.Run("title from eventAliasEn", func(t *testing.T) {
		e := decode(`,"eventAliasEn":"Disk full","eventAlias":"磁盘已满"`)
		p := validatedCreate(t, e, ch, received)
		if p.Title != "Disk full" || p.Message != "the.type" {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("long title and message cut", func(t *testing.T) {
		e := decode(`,"eventAliasEn":"` + strings.Repeat("标", 300) + `","data":{"message":"` + strings.Repeat("m", 600) + `"}`)
		p := validatedCreate(t, e, ch, received)
		if len([]rune(p.Title)) != 256 || len(p.Message) != 512 {
			t.Fatalf("title %d message %d", len([]rune(p.Title)), len(p.Message))
		}
	})
	t.Run("message before info", func(t *testing.T) {
		p := validatedCreate(t, decode(`,"data":{"info":"i","message":"m"}`), ch, received)
		if p.Message != "m" {
			t.Fatal(p.Message)
		}
		p = validatedCreate(t, decode(`,"data":{"info":"i","message":"  "}`), ch, received)
		if p.Message != "i" {
			t.Fatal(p.Message)
		}
		p = validatedCreate(t, decode(`,"data":{"info":5}`), ch, received)
		if p.Message != "the.type" {
			t.Fatal(p.Message)
		}
	})
	t.Run("time defaults to received", func(t *testing.T) {
		p := validatedCreate(t, decode(``), ch, received)
		if p.EventTime != received.UnixMilli() {
			t.Fatal(p.EventTime)
		}
	})
	t.Run("severity", func(t *testing.T) {
		if p := validatedCreate(t, decode(`,"level":"major"`), ch, received); p.Severity != ops.SeverityHigh {
			t.Fatal(p.Severity)
		}
	})
	t.Run("thing link from subject", func(t *testing.T) {
		e := decode(`,"subject":"host-42"`)
		o := e.Occurrence(ch, received)
		if o.Create.ThingID == nil || *o.Create.ThingID != "host-42" || o.Close.ThingID != nil {
			t.Fatalf("%+v", o.Create.ThingID)
		}
		e = decode(`,"subject":"a/b"`)
		if o := e.Occurrence(ch, received); o.Create.ThingID != nil {
			t.Fatal("invalid thing id linked")
		}
	})
	t.Run("attrs flattened", func(t *testing.T) {
		e := decode(`,"data":{"n":1.5,"b":true,"z":null,"s":"x","arr":[1,{"a":2}],` +
			`"obj":{"k":"v","deep":{"x":[1]},"list":["a"],"nil":null},"a.b":"literal","ce.type":"spoof"},` +
			`"resourceType":"cvm","level":"warning","accountId":"42","eventAlias":"别名","recvTimestamp":"2020-11-19T21:04:41+08:00"`)
		p := validatedCreate(t, e, ch, received)
		got := attrsOf(t, p.Attrs)
		want := map[string]any{
			"n": 1.5, "b": true, "s": "x", "arr": `[1,{"a":2}]`, "obj.k": "v", "obj.deep": `{"x":[1]}`,
			"obj.list": `["a"]`, "a.b": "literal",
			"ce.id": "1", "ce.source": "src", "ce.type": "the.type", "ce.resourcetype": "cvm", "ce.level": "WARNING",
			"ce.accountid": "42", "ce.eventalias": "别名", "ce.recvtimestamp": "2020-11-19T21:04:41+08:00",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("attrs\n got %v\nwant %v", got, want)
		}
		// Data order first, then the context.
		if !strings.HasPrefix(string(p.Attrs), `{"n":1.5,"b":true,"s":"x"`) {
			t.Fatalf("order %s", p.Attrs)
		}
	})
	t.Run("blank data key left out", func(t *testing.T) {
		// attrs refuse a blank key; the report is not refused for it.
		got := attrsOf(t, validatedCreate(t, decode(`,"data":{"":1," ":2,"k":3}`), ch, received).Attrs)
		if _, ok := got[""]; ok || got[" "] != nil || got["k"] != 3.0 {
			t.Fatalf("%v", got)
		}
	})
	t.Run("nested key meets literal key", func(t *testing.T) {
		got := attrsOf(t, validatedCreate(t, decode(`,"data":{"a":{"b":1},"a.b":2}`), ch, received).Attrs)
		if got["a.b"] != 1.0 {
			t.Fatalf("%v", got)
		}
	})
	t.Run("extensions", func(t *testing.T) {
		e := Event{Source: "s", Type: "t", ID: "1", Extensions: map[string]string{"zeta": "z", "alpha": "a", "id": "spoof"}}
		if err := e.Check(""); err != nil {
			t.Fatal(err)
		}
		p := validatedCreate(t, e, ch, received)
		if !strings.HasSuffix(string(p.Attrs), `"ce.alpha":"a","ce.zeta":"z"}`) || attrsOf(t, p.Attrs)["ce.id"] != "1" {
			t.Fatalf("%s", p.Attrs)
		}
	})
	t.Run("large data cut to the budget", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`,"data":{"big":"` + strings.Repeat("y", 5000) + `","deep":{"x":{"y":"` + strings.Repeat("q", 5000) + `"}}`)
		for i := range 200 {
			fmt.Fprintf(&b, `,"k%03d":"%s"`, i, strings.Repeat("v", 500))
		}
		b.WriteString(`}`)
		p := validatedCreate(t, decode(b.String()), ch, received)
		got := attrsOf(t, p.Attrs)
		if len(got["big"].(string)) != maxAttrValue || len(got["deep.x"].(string)) != maxAttrValue {
			t.Fatal("values not cut")
		}
		if got[TruncatedAttr] != true || got["ce.id"] != "1" || got["k000"] == nil || got["k199"] != nil {
			t.Fatalf("budget not applied: %d keys", len(got))
		}
		if len(p.Attrs) > maxAttrsBytes+2048 {
			t.Fatalf("attrs %d bytes", len(p.Attrs))
		}
	})
	t.Run("a data member named like the marker", func(t *testing.T) {
		// Cut or not, the attrs name the marker once (a second one made
		// ops refuse the attrs: a 400 for an acceptable CloudEvent), and
		// it is the gateway's.
		var b strings.Builder
		b.WriteString(`,"data":{"pushgo.attrs_truncated":"mine","pushgo":{"attrs_truncated":"mine too"}`)
		for i := range 200 {
			fmt.Fprintf(&b, `,"k%03d":"%s"`, i, strings.Repeat("v", 500))
		}
		b.WriteString(`}`)
		got := attrsOf(t, validatedCreate(t, decode(b.String()), ch, received).Attrs)
		if got[TruncatedAttr] != true || got["k000"] == nil {
			t.Fatalf("cut: marker %v, k000 %v", got[TruncatedAttr], got["k000"])
		}
		got = attrsOf(t, validatedCreate(t, decode(`,"data":{"pushgo.attrs_truncated":"mine","a":1}`), ch, received).Attrs)
		if _, ok := got[TruncatedAttr]; ok || got["a"] != 1.0 {
			t.Fatalf("not cut: %v", got)
		}
	})
}

func validatedCreate(t *testing.T, e Event, ch string, received time.Time) *ops.EventPayload {
	t.Helper()
	create, _ := validate(t, e.Occurrence(ch, received))
	return create.Payload.(*ops.EventPayload)
}

func TestResponse(t *testing.T) {
	ch := ids.NewChannelID()
	received := time.Date(2025, 3, 25, 21, 4, 41, 500_000_000, time.FixedZone("CST", 8*3600))
	decode := func(members string) Event {
		return mustDecode(t, `{"eventList":[{"source":"s","type":"t","id":"1","data":"{\"a\":1}"`+members+`}]}`).Events[0]
	}
	cases := []struct{ members, time string }{
		{``, "2025-03-25T13:04:41.5Z"},
		{`,"time":1615430559146`, "2021-03-11T02:42:39.146Z"},
		{`,"time":"1615430559"`, "2021-03-11T02:42:39Z"},
		{`,"time":"2023-01-01T00:00:00+0800"`, "2023-01-01T00:00:00+0800"},
		{`,"time":"2020-11-19T21:04:41Z"`, "2020-11-19T21:04:41Z"},
	}
	for _, c := range cases {
		e := decode(c.members)
		r := e.Response(ch, "bus name", received)
		if r.Time != c.time || r.RecvTimestamp != "2025-03-25T21:04:41+08:00" || r.EventBusID != ch || r.EventBusName != "bus name" {
			t.Errorf("%s: %+v", c.members, r)
		}
		b, err := json.Marshal(Response{Events: []ResponseEvent{r}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"data":{"a":1},"id":"1","source":"s","type":"t"`) {
			t.Errorf("body %s", b)
		}
	}
	// No data, no data member.
	e := mustDecode(t, `{"eventList":[{"source":"s","type":"t","id":"1"}]}`).Events[0]
	b, _ := json.Marshal(e.Response(ch, "n", received))
	if strings.Contains(string(b), `"data"`) {
		t.Fatalf("body %s", b)
	}
}
