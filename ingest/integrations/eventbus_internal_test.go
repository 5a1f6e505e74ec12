package integrations

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest/integrations/eventbus"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// ebChannel is the channel of fakeTokens' "good" token.
const ebChannel = "0123456789ABCDEFGHJKMNPQRS"

// ebAppender records appends and answers them with answer (nil: accepted).
type ebAppender struct {
	mu     sync.Mutex
	calls  []*ops.Validated
	answer func(v *ops.Validated) *apierr.Error
}

func (a *ebAppender) Append(_ context.Context, v *ops.Validated) (oplog.Result, *apierr.Error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, v)
	if a.answer != nil {
		if aerr := a.answer(v); aerr != nil {
			return oplog.Result{}, aerr
		}
	}
	return oplog.Result{OpID: v.OpID, EntityID: v.EntityID}, nil
}

// ebChannels knows ebChannel as "bus"; err, when set, is every answer.
type ebChannels struct{ err error }

func (c ebChannels) Lookup(_ context.Context, id string) (registry.Channel, bool, error) {
	if c.err != nil {
		return registry.Channel{}, false, c.err
	}
	if id == ebChannel {
		return registry.Channel{ID: id, Name: "bus"}, true, nil
	}
	return registry.Channel{}, false, nil
}

// ebNoEvents is a projection that holds no Event (a create answered
// op_id_conflict reads the Event's time: see eventbus_resend_internal_test.go).
type ebNoEvents struct{}

func (ebNoEvents) Read(context.Context, *reads.Request) (jsontext.Value, *apierr.Error) {
	return nil, apierr.New(apierr.EventNotFound)
}

func (ebNoEvents) ReadConsistent(context.Context, *reads.Request) (jsontext.Value, *apierr.Error) {
	return nil, apierr.New(apierr.EventNotFound)
}

func ebRoutes(t *testing.T, app *ebAppender, ch ebChannels) (*echo.Echo, *Routes) {
	t.Helper()
	e := echo.New()
	r := Register(e, Deps{Tokens: fakeTokens{}, Appender: app, Reader: ebNoEvents{}, Channels: ch, MaxInFlight: 1})
	t.Cleanup(r.Close)
	return e, r
}

func ebBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return m
}

var ebAuth = map[string]string{"Authorization": "Api-Token good"}

const ebOne = `{"eventList":[{"source":"s","type":"t","id":"1","subject":"host-1"}],"eventBusId":"bus"}`

// TestEventBusFailures: overload and broker failures are 503
// INTERNAL_ERROR with Retry-After (resending the batch is safe), a fault
// is 500, an unknown or unreadable channel registry ends before any
// append.
func TestEventBusFailures(t *testing.T) {
	down := func(*ops.Validated) *apierr.Error {
		return &apierr.Error{Code: apierr.AppendUnavailable, Detail: "broker down", RetryAfter: 2}
	}
	fault := func(*ops.Validated) *apierr.Error { return apierr.New(apierr.InternalError) }
	cases := []struct {
		name    string
		headers map[string]string
		answer  func(*ops.Validated) *apierr.Error
		ch      ebChannels
		status  int
		code    string
		retry   string
		appends int
	}{
		{"token store down", map[string]string{"Authorization": "Bearer down"}, nil, ebChannels{}, 503, "INTERNAL_ERROR", "1", 0},
		{"append unavailable", ebAuth, down, ebChannels{}, 503, "INTERNAL_ERROR", "2", 1},
		{"append fault", ebAuth, fault, ebChannels{}, 500, "INTERNAL_ERROR", "", 1},
		{"registry down", ebAuth, nil, ebChannels{err: errors.New("kv down")}, 503, "INTERNAL_ERROR", "1", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := &ebAppender{answer: c.answer}
			e, _ := ebRoutes(t, app, c.ch)
			rec := serve(e, RouteEventBus, c.headers, ebOne)
			m := ebBody(t, rec)
			if rec.Code != c.status || m["code"] != c.code || rec.Header().Get("Retry-After") != c.retry || len(app.calls) != c.appends {
				t.Fatalf("got %d %v Retry-After %q, %d appends", rec.Code, m, rec.Header().Get("Retry-After"), len(app.calls))
			}
		})
	}
	t.Run("overload", func(t *testing.T) {
		app := &ebAppender{}
		e, r := ebRoutes(t, app, ebChannels{})
		release, ok := r.slots.Take("")
		if !ok {
			t.Fatal("no slot")
		}
		defer release()
		rec := serve(e, RouteEventBusNew, ebAuth, ebOne)
		m := ebBody(t, rec)
		if rec.Code != 503 || m["code"] != "INTERNAL_ERROR" || m["message"] != "overloaded, retry" ||
			rec.Header().Get("Retry-After") != "1" || len(app.calls) != 0 {
			t.Fatalf("got %d %v", rec.Code, m)
		}
	})
}

// TestEventBusAlreadyThere: a create that is already there (replayed, or
// op_id_conflict because its defaulted time differs) still gets its close,
// and a close that is already there (event_closed) is success. A subject
// that names no live Thing is recorded without the link.
func TestEventBusAlreadyThere(t *testing.T) {
	cases := []struct {
		name   string
		answer func(*ops.Validated) *apierr.Error
		want   []string // op and thing of each append
	}{
		{"fresh", nil, []string{"event.create host-1", "event.close "}},
		{"create conflict", func(v *ops.Validated) *apierr.Error {
			if v.Op == ops.EventCreate {
				return apierr.New(apierr.OpIDConflict)
			}
			return nil
		}, []string{"event.create host-1", "event.close "}},
		{"close closed", func(v *ops.Validated) *apierr.Error {
			if v.Op == ops.EventClose {
				return apierr.Field(apierr.EventClosed, "event_id")
			}
			return nil
		}, []string{"event.create host-1", "event.close "}},
		{"no such thing", func(v *ops.Validated) *apierr.Error {
			if v.ThingID != "" {
				return apierr.Field(apierr.ThingNotFound, "thing_id")
			}
			return nil
		}, []string{"event.create host-1", "event.create ", "event.close "}},
		{"deleted thing", func(v *ops.Validated) *apierr.Error {
			if v.ThingID != "" {
				return apierr.Field(apierr.ThingDeleted, "thing_id")
			}
			return nil
		}, []string{"event.create host-1", "event.create ", "event.close "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := &ebAppender{answer: c.answer}
			e, _ := ebRoutes(t, app, ebChannels{})
			rec := serve(e, RouteEventBus, ebAuth, ebOne)
			if rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			var got []string
			for _, v := range app.calls {
				got = append(got, string(v.Op)+" "+v.ThingID)
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Fatalf("appends %v, want %v", got, c.want)
			}
			create, closeOp := app.calls[0], app.calls[len(app.calls)-1]
			if closeOp.OpID != create.OpID+":close" || closeOp.EntityID == "" || closeOp.ChannelID != ebChannel {
				t.Fatalf("close %+v of create %+v", closeOp, create)
			}
		})
	}
}

// TestCloudEventsFailures: overload and an unavailable broker are 503
// with Retry-After in the PushGo envelope.
func TestCloudEventsFailures(t *testing.T) {
	headers := map[string]string{"Authorization": "Bearer good", "Ce-Specversion": "1.0", "Ce-Id": "1",
		"Ce-Source": "/s", "Ce-Type": "t", "Content-Type": "application/json"}
	app := &ebAppender{answer: func(*ops.Validated) *apierr.Error {
		return &apierr.Error{Code: apierr.AppendUnavailable, Detail: "broker down", RetryAfter: 1}
	}}
	e, r := ebRoutes(t, app, ebChannels{})
	rec := serve(e, RouteCloudEvents, headers, `{"a":1}`)
	if m := envelopeOf(t, rec); rec.Code != 503 || *m.ErrorCode != "append_unavailable" || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("append down: %d %s", rec.Code, rec.Body)
	}
	release, ok := r.slots.Take("")
	if !ok {
		t.Fatal("no slot")
	}
	defer release()
	rec = serve(e, RouteCloudEvents, headers, `{"a":1}`)
	if m := envelopeOf(t, rec); rec.Code != 503 || *m.ErrorCode != "append_unavailable" || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("overload: %d %s", rec.Code, rec.Body)
	}
}

// TestCloudEventsNameTheMember: a structured or batched CloudEvent with a
// member twice or text that is not Unicode is 400 invalid_json_data naming
// the member (until 6 December: "body: not a CloudEvent: not valid JSON in
// UTF-8" or "a member name is repeated in an object"), and nothing is
// appended.
func TestCloudEventsNameTheMember(t *testing.T) {
	structured := map[string]string{"Authorization": "Bearer good", "Content-Type": "application/cloudevents+json"}
	batch := map[string]string{"Authorization": "Bearer good", "Content-Type": "application/cloudevents-batch+json"}
	ev := func(data string) string {
		return `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","data":` + data + `}`
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		body    string
		detail  string
	}{
		{"invalid utf-8 in data", structured, ev("{\"k\":\"\xff\"}"), "data.k: not a CloudEvent: not valid UTF-8 (byte 0xff)"},
		{"lone surrogate in a batch's data", batch, "[" + ev(`{"k":"\ud800"}`) + "]", `0.data.k: not a CloudEvent: not valid UTF-8 (lone surrogate escape \ud800)`},
		{"lone surrogate in a name", structured, ev(`{"\udc00":1}`), "data: not a CloudEvent: a member name is not valid UTF-8"},
		{"duplicate in data", structured, ev(`{"k":1,"k":2}`), "data.k: not a CloudEvent: duplicate member"},
		{"malformed", structured, ev("{\"k\":\"\xff\""), "body: not a CloudEvent: not valid JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := &ebAppender{}
			e, _ := ebRoutes(t, app, ebChannels{})
			rec := serve(e, RouteCloudEvents, c.headers, c.body)
			m := envelopeOf(t, rec)
			if rec.Code != 400 || m.ErrorCode == nil || *m.ErrorCode != "invalid_json_data" || m.Error == nil || !strings.HasPrefix(*m.Error, c.detail) {
				t.Fatalf("got %d %s, want 400 invalid_json_data %q", rec.Code, rec.Body, c.detail)
			}
			if len(app.calls) != 0 {
				t.Fatalf("%d appends", len(app.calls))
			}
		})
	}
}

// TestEventBusDeepData: data nested deeper than eventbus.MaxDataDepth is
// refused before anything is appended, in either form and on either
// route; data at the bound is recorded and answered. (A string-held data
// nested near the JSON decoder's limit was recorded and then answered 500,
// each retry appending again.)
func TestEventBusDeepData(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	quoted := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	body := func(data string) string {
		return `{"eventList":[{"source":"s","type":"t","id":"1","data":` + data + `}],"eventBusId":"bus"}`
	}
	for _, c := range []struct {
		name, data string
		status     int
	}{
		{"object at the bound", deep(eventbus.MaxDataDepth), 200},
		{"string at the bound", quoted(deep(eventbus.MaxDataDepth)), 200},
		{"object past the bound", deep(eventbus.MaxDataDepth + 1), 400},
		{"string past the bound", quoted(deep(eventbus.MaxDataDepth + 1)), 400},
		{"string near the decoder's limit", quoted(deep(9998)), 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := &ebAppender{}
			e, _ := ebRoutes(t, app, ebChannels{})
			rec := serve(e, RouteEventBus, ebAuth, body(c.data))
			m := ebBody(t, rec)
			switch {
			case rec.Code != c.status:
				t.Fatalf("got %d %.200s", rec.Code, rec.Body)
			case c.status == 200 && len(app.calls) != 2:
				t.Fatalf("200 after %d appends", len(app.calls))
			case c.status == 400 && (len(app.calls) != 0 || m["code"] != "INVALID_PARAMETER_VALUE" ||
				!strings.Contains(m["message"].(string), "eventList[0].data nests objects and arrays deeper than 1000 levels")):
				t.Fatalf("400 after %d appends: %.300s", len(app.calls), rec.Body)
			}
		})
	}
	t.Run("cloudevents binary mode", func(t *testing.T) {
		app := &ebAppender{}
		e, _ := ebRoutes(t, app, ebChannels{})
		h := map[string]string{"Authorization": "Api-Token good", "Content-Type": "application/json",
			"Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Specversion": "1.0"}
		rec := serve(e, RouteCloudEvents, h, deep(eventbus.MaxDataDepth+1))
		if rec.Code != 400 || len(app.calls) != 0 {
			t.Fatalf("got %d after %d appends: %.300s", rec.Code, len(app.calls), rec.Body)
		}
	})
}

// TestCloudEventsHeaderTwice: a binary-mode attribute header sent twice is
// refused (the SDK took the first and dropped the other).
func TestCloudEventsHeaderTwice(t *testing.T) {
	h := http.Header{}
	for k, v := range map[string]string{"Content-Type": "application/json", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Specversion": "1.0"} {
		h.Set(k, v)
	}
	if _, aerr := parseCloudEvents(context.Background(), h, []byte(`{}`)); aerr != nil {
		t.Fatalf("once: %v", aerr)
	}
	h.Add("Ce-Id", "2")
	if _, aerr := parseCloudEvents(context.Background(), h, []byte(`{}`)); aerr == nil || aerr.Code != apierr.InvalidJSONData || !strings.Contains(aerr.Detail, "ce-id") {
		t.Fatalf("twice: %v", aerr)
	}
}

// TestCloudEventsDataThatIsNotJSON: data a real sender sends that is not
// JSON, whether its content type says JSON or says nothing, is recorded
// as text (or base64 for bytes that are not UTF-8) with its content type,
// not refused (no sender retries a 400: "timeout…" read as a broken JSON
// literal was) nor dropped (text read as JSON that is no value was
// answered 200 with no data recorded).
func TestCloudEventsDataThatIsNotJSON(t *testing.T) {
	binary := map[string]string{"Authorization": "Bearer good", "Ce-Specversion": "1.0", "Ce-Source": "/s", "Ce-Type": "t"}
	with := func(id, ct string) map[string]string {
		h := maps.Clone(binary)
		h["Ce-Id"] = id
		if ct != "" {
			h["Content-Type"] = ct
		}
		return h
	}
	structured := map[string]string{"Authorization": "Bearer good", "Content-Type": "application/cloudevents+json"}
	for _, c := range []struct {
		name, body string
		headers    map[string]string
		want       map[string]any
	}{
		{"binary mode, text, no content type", "Disk /dev/sda1 is 95% full", with("1", ""),
			map[string]any{"data": "Disk /dev/sda1 is 95% full"}},
		{"binary mode, text under the JS SDK's JSON content type", "nothing to report", with("2", "application/json; charset=utf-8"),
			map[string]any{"data": "nothing to report", "ce.datacontenttype": "application/json; charset=utf-8"}},
		{"binary mode, text that starts as a JSON literal", "timeout contacting db", with("3", "application/json"),
			map[string]any{"data": "timeout contacting db", "ce.datacontenttype": "application/json"}},
		{"structured, data_base64 without datacontenttype (the Go SDK's SetData of bytes)",
			`{"specversion":"1.0","id":"4","source":"/s","type":"t","data_base64":"iVBORwD/"}`, structured,
			map[string]any{"data_base64": "iVBORwD/"}},
		{"binary mode, JSON still JSON", `{"disk":"sda1"}`, with("5", "application/json"), map[string]any{"disk": "sda1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := &ebAppender{}
			e, _ := ebRoutes(t, app, ebChannels{})
			rec := serve(e, RouteCloudEvents, c.headers, c.body)
			if rec.Code != http.StatusAccepted || len(app.calls) == 0 { // an occurrence: its create, then its close
				t.Fatalf("%d %s; %d appended", rec.Code, rec.Body, len(app.calls))
			}
			var attrs map[string]any
			if err := json.Unmarshal(app.calls[0].Payload.(*ops.EventPayload).Attrs, &attrs); err != nil {
				t.Fatal(err)
			}
			for k, v := range c.want {
				if attrs[k] != v {
					t.Errorf("attrs[%q] = %v, want %v (attrs %v)", k, attrs[k], v, attrs)
				}
			}
		})
	}
}

// TestCloudEventsBatchOfEventGridsSize: a batch of more than the event bus
// route's 100 events, as Azure Event Grid sends up to 5,000, is recorded
// whole (it was refused 400, which Event Grid does not retry); one past
// MaxCloudEventsBatch is refused before anything is recorded.
func TestCloudEventsBatchOfEventGridsSize(t *testing.T) {
	batch := func(n int) string {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"specversion":"1.0","type":"Microsoft.Storage.BlobCreated","source":"/acct","id":"id-%d","data":{"api":"PutBlockList"}}`, i)
		}
		return b.String() + "]"
	}
	headers := map[string]string{"Authorization": "Bearer good", "Content-Type": "application/cloudevents-batch+json; charset=utf-8",
		"Accept": "application/json"}
	app := &ebAppender{}
	e, _ := ebRoutes(t, app, ebChannels{})
	rec := serve(e, RouteCloudEvents, headers, batch(250))
	if rec.Code != 200 || len(ebBody(t, rec)["data"].(map[string]any)["events"].([]any)) != 250 {
		t.Fatalf("a batch of 250: %d %.300s", rec.Code, rec.Body)
	}
	app = &ebAppender{}
	e, _ = ebRoutes(t, app, ebChannels{})
	if rec := serve(e, RouteCloudEvents, headers, batch(MaxCloudEventsBatch+1)); rec.Code != 400 || len(app.calls) != 0 {
		t.Fatalf("a batch past the bound: %d, %d recorded", rec.Code, len(app.calls))
	}
}

// TestCloudEventsSeverityExtensionsOfOtherTools: a severity or level
// extension outside PushGo's and the event bus's words is recorded, not
// refused (400, which no sender retries): a monitoring word sets the
// severity as Alertmanager's label does, another word is kept as its attr.
func TestCloudEventsSeverityExtensionsOfOtherTools(t *testing.T) {
	for i, c := range []struct {
		header, value, severity, attr string
	}{
		{"Ce-Severity", "warning", ops.SeverityNormal, ""},
		{"Ce-Severity", "Error", ops.SeverityHigh, ""},
		{"Ce-Severity", "sev2", ops.SeverityLow, "sev2"}, // no level: the event bus's default
		{"Ce-Level", "info", ops.SeverityLow, "info"},
		{"Ce-Severity", "HIGH", ops.SeverityHigh, ""},
	} {
		app := &ebAppender{}
		e, _ := ebRoutes(t, app, ebChannels{})
		headers := map[string]string{"Authorization": "Bearer good", "Ce-Specversion": "1.0", "Ce-Id": fmt.Sprint(i),
			"Ce-Source": "/mon", "Ce-Type": "alert", "Content-Type": "application/json", c.header: c.value}
		rec := serve(e, RouteCloudEvents, headers, `{"message":"disk full"}`)
		if rec.Code != http.StatusAccepted || len(app.calls) == 0 {
			t.Fatalf("%s: %s: %d %s", c.header, c.value, rec.Code, rec.Body)
		}
		p := app.calls[0].Payload.(*ops.EventPayload)
		var attrs map[string]any
		if err := json.Unmarshal(p.Attrs, &attrs); err != nil {
			t.Fatal(err)
		}
		name := "ce." + strings.ToLower(strings.TrimPrefix(c.header, "Ce-"))
		if p.Severity != c.severity || (c.attr != "" && attrs[name] != c.attr) {
			t.Errorf("%s: %s: severity %q, attrs %v", c.header, c.value, p.Severity, attrs)
		}
	}
}
