package deliveryflow_test

// The app contract: what the PushGo apps read of a push, checked on the
// requests our real APNs and FCM senders make, captured at the fake
// providers. The expectations are data (testdata/app_contract.json), each
// naming the app (or PushGo gateway) file and line it comes from, read at
// these commits of the upstream repositories:
//
//	AldenClark/pushgo           655a88113a838235425f3aecc2e7bd764e3960c4  (iPhone, iPad, Mac, Watch)
//	AldenClark/pushgo-android   14b6993fa375873741c6929601e5f1243ba7300c
//	AldenClark/pushgo-gateway   1f9d6c270597aa02c3dec9f02bf3416b00207171  (v1.2.9)
//
// The fixture names them too; a source naming another repository, or no
// line, fails the test, so every expectation stays traceable.

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// contract is testdata/app_contract.json.
type contract struct {
	// Repos maps a source prefix ("pushgo-android") to its repository and
	// the commit its lines were read at.
	Repos     map[string]contractRepo `json:"repos"`
	BaseURL   string                  `json:"base_url"`
	Scenarios []scenario              `json:"scenarios"`
}

type contractRepo struct {
	Repo   string `json:"repo"`
	Commit string `json:"commit"`
}

// scenario is a series of requests to one fresh channel with one iOS
// (APNs) and one Android (FCM) device subscribed; each request is one push
// to each device.
type scenario struct {
	Name   string        `json:"name"`
	Sends  []send        `json:"sends"`
	Expect []expectation `json:"expect"`
}

// send is one request. channel_id and password are added to its body;
// "${var}" in a string is replaced (see vars).
type send struct {
	Route string         `json:"route"`
	Body  map[string]any `json:"body"`
}

// expectation is one thing an app reads.
//
// Path names what is checked: "data.<key>" is the flat map (beside aps for
// APNs, message.data for FCM), "aps.<a>.<b>" the APNs aps dictionary,
// "header.<name>" an APNs request header, "message.<a>.<b>" the FCM v1
// message. At restricts a data path to one provider ("apns", "fcm").
// Push is the index of the push (its send) in the scenario; -1, the
// default, is the last.
//
// Either Want (a JSON value; strings are expanded like send bodies) or Is
// (absent, present, nonempty, millis, json-object, json-array) says what
// the value must be.
type expectation struct {
	Path    string   `json:"path"`
	At      string   `json:"at"`
	Push    *int     `json:"push"`
	Want    any      `json:"want"`
	Is      string   `json:"is"`
	Sources []string `json:"sources"`
	Why     string   `json:"why"`
}

// sourceRE is "<repo prefix>:<path>:<line>[-<line>]".
var sourceRE = regexp.MustCompile(`^([a-z-]+):([^:]+):([0-9]+)(-[0-9]+)?$`)

func loadContract(t *testing.T) contract {
	t.Helper()
	b, err := os.ReadFile("testdata/app_contract.json")
	if err != nil {
		t.Fatal(err)
	}
	var c contract
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("app_contract.json: %v", err)
	}
	for _, s := range c.Scenarios {
		for i, e := range s.Expect {
			if len(e.Sources) == 0 {
				t.Errorf("%s expectation %d (%s) names no source", s.Name, i, e.Path)
			}
			for _, src := range e.Sources {
				m := sourceRE.FindStringSubmatch(src)
				if m == nil || c.Repos[m[1]].Commit == "" {
					t.Errorf("%s %s: source %q is not <repo>:<path>:<line> of a repository in repos", s.Name, e.Path, src)
				}
			}
			if (e.Want == nil) == (e.Is == "") {
				t.Errorf("%s %s: give one of want and is", s.Name, e.Path)
			}
		}
	}
	return c
}

// TestAppContract runs every scenario of testdata/app_contract.json through
// ingest, the pusher and the real senders, and checks each expectation on
// the APNs and FCM requests as the fake providers received them.
func TestAppContract(t *testing.T) {
	c := loadContract(t)
	e := setup(t, func(cfg *pusher.Config) { cfg.PublicBaseURL = c.BaseURL })
	for _, s := range c.Scenarios {
		t.Run(s.Name, func(t *testing.T) { runScenario(t, e, c, s) })
	}
}

// tokens derives a scenario's device tokens from its name, so each
// scenario's pushes are told apart at the shared fake providers.
func tokens(name string) (apnsTok, fcmTok string) {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:]), "fcm-" + hex.EncodeToString(sum[:8]) + ":APA91b"
}

// captured is one push as the fake providers received it, decoded.
type captured struct {
	apnsHeader http.Header
	apnsBody   map[string]any
	fcmMessage map[string]any
	problems   []string
}

func runScenario(t *testing.T, e *env, c contract, s scenario) {
	now := time.Now()
	vars := map[string]string{
		"ttl_1h":    strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10),
		"now_ms":    strconv.FormatInt(now.UnixMilli(), 10),
		"long_body": strings.Repeat("line of log output\n", 300),
		"base_url":  c.BaseURL,
	}
	vars["channel_id"] = e.post("/channel/create", map[string]any{"channel_name": s.Name, "password": pw})["channel_id"].(string)
	apnsTok, fcmTok := tokens(s.Name)
	e.device("ios", "apns", apnsTok, vars["channel_id"])
	e.device("android", "fcm", fcmTok, vars["channel_id"])

	// perPush[i] holds the variables as they were after send i: the ids
	// its answer named (op_id is that send's own).
	perPush := make([]map[string]string, len(s.Sends))
	for i, sd := range s.Sends {
		body := map[string]any{"channel_id": vars["channel_id"], "password": pw}
		for k, v := range sd.Body {
			body[k] = expand(v, vars)
		}
		data := e.post(sd.Route, body)
		for _, k := range []string{"op_id", "message_id", "event_id", "thing_id"} {
			if v, ok := data[k].(string); ok && v != "" {
				vars[k] = v
			}
		}
		perPush[i] = maps.Clone(vars)
	}

	n := len(s.Sends)
	waitFor(t, "every push at both providers", func() bool {
		return len(e.apns.Received(apnsTok)) >= n && len(e.fcm.Received(fcmTok)) >= n
	})
	pushes := collect(t, e, apnsTok, fcmTok)
	if len(pushes) != n {
		t.Fatalf("%d pushes per device, want %d", len(pushes), n)
	}
	for i, p := range pushes {
		for _, pr := range p.problems {
			t.Errorf("push %d: the provider noticed: %s", i, pr)
		}
	}

	for _, x := range s.Expect {
		i := n - 1
		if x.Push != nil && *x.Push >= 0 {
			i = *x.Push
		}
		if i >= n {
			t.Errorf("%s: push %d of %d", x.Path, i, n)
			continue
		}
		for _, prov := range providersOf(x) {
			got, ok := lookup(pushes[i], prov, x.Path)
			if msg := check(got, ok, x, perPush[i]); msg != "" {
				t.Errorf("%s push %d %s: %s\n\tapp: %s", prov, i, x.Path, msg, strings.Join(x.Sources, "; "))
			}
		}
	}
}

// collect decodes what the fake providers received for a scenario's two
// devices, pairing the i-th APNs and FCM requests in log order. An FCM
// device's pushes come one at a time, in order; an APNs device's are
// pipelined on its connection, so they reach the provider in order, but
// the fake (net/http's HTTP/2 server: a handler per stream) records them
// in whatever order its handlers run: its records are put back in log
// order by their delivery ids ("<seq>:<device>").
func collect(t *testing.T, e *env, apnsTok, fcmTok string) []captured {
	t.Helper()
	var out []captured
	for _, r := range e.apns.Requests() {
		if r.Token != apnsTok {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("APNs body: %v", err)
		}
		out = append(out, captured{apnsHeader: r.Header, apnsBody: body})
	}
	slices.SortStableFunc(out, func(a, b captured) int {
		return cmp.Compare(logSeq(t, a.apnsBody["delivery_id"]), logSeq(t, b.apnsBody["delivery_id"]))
	})
	received := e.apns.Received(apnsTok)
	slices.SortStableFunc(received, func(a, b sendertest.Observed) int {
		return cmp.Compare(logSeq(t, a.Data["delivery_id"]), logSeq(t, b.Data["delivery_id"]))
	})
	for i, o := range received {
		if i < len(out) {
			out[i].problems = append(out[i].problems, o.Problems...)
		}
	}
	i := 0
	for _, r := range e.fcm.Requests() {
		var body struct {
			Message map[string]any `json:"message"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("FCM body: %v", err)
		}
		if body.Message["token"] != fcmTok {
			continue
		}
		if i < len(out) {
			out[i].fcmMessage = body.Message
		}
		i++
	}
	for i, o := range e.fcm.Received(fcmTok) {
		if i < len(out) {
			out[i].problems = append(out[i].problems, o.Problems...)
		}
	}
	if i != len(out) {
		t.Fatalf("%d APNs pushes, %d FCM pushes", len(out), i)
	}
	return out
}

func providersOf(x expectation) []string {
	switch {
	case strings.HasPrefix(x.Path, "aps.") || strings.HasPrefix(x.Path, "header."):
		return []string{"apns"}
	case strings.HasPrefix(x.Path, "message."):
		return []string{"fcm"}
	case x.At != "":
		return []string{x.At}
	}
	return []string{"apns", "fcm"}
}

// lookup finds path in one push as provider prov received it.
func lookup(p captured, prov, path string) (any, bool) {
	head, rest, _ := strings.Cut(path, ".")
	switch {
	case head == "header":
		v := p.apnsHeader.Get(rest)
		return v, v != ""
	case head == "data" && prov == "apns":
		if rest == "aps" {
			return nil, false
		}
		v, ok := p.apnsBody[rest]
		return v, ok
	case head == "data":
		d, _ := p.fcmMessage["data"].(map[string]any)
		v, ok := d[rest]
		return v, ok
	case head == "aps":
		return walk(p.apnsBody["aps"], rest)
	case head == "message":
		return walk(p.fcmMessage, rest)
	}
	return nil, false
}

func walk(v any, path string) (any, bool) {
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[part]; !ok {
			return nil, false
		}
	}
	return v, true
}

var millisRE = regexp.MustCompile(`^[0-9]{13}$`)

// check returns "" when got satisfies x, else what is wrong.
func check(got any, ok bool, x expectation, vars map[string]string) string {
	if x.Is == "absent" {
		if ok {
			return fmt.Sprintf("present (%v), want absent", got)
		}
		return ""
	}
	if !ok {
		return "absent"
	}
	if x.Want != nil {
		want := expand(x.Want, vars)
		if !jsonEqual(got, want) {
			return fmt.Sprintf("%#v, want %#v", got, want)
		}
		return ""
	}
	s, isStr := got.(string)
	switch x.Is {
	case "present":
		return ""
	case "nonempty":
		if !isStr || strings.TrimSpace(s) == "" {
			return fmt.Sprintf("%#v, want a non-empty string", got)
		}
	case "millis":
		if !isStr || !millisRE.MatchString(s) {
			return fmt.Sprintf("%#v, want Unix milliseconds as a string", got)
		}
	case "json-object", "json-array":
		var v any
		if !isStr || json.Unmarshal([]byte(s), &v) != nil {
			return fmt.Sprintf("%#v, want a string of JSON", got)
		}
		if _, obj := v.(map[string]any); obj != (x.Is == "json-object") {
			return fmt.Sprintf("%s, want a %s", s, x.Is)
		}
		if _, arr := v.([]any); arr != (x.Is == "json-array") {
			return fmt.Sprintf("%s, want a %s", s, x.Is)
		}
	default:
		return "unknown matcher " + x.Is
	}
	return ""
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var u, v any
	_ = json.Unmarshal(x, &u)
	_ = json.Unmarshal(y, &v)
	return reflect.DeepEqual(u, v)
}

var varRE = regexp.MustCompile(`\$\{([a-z_0-9]+)\}`)

// expand replaces ${name} in the strings of v.
func expand(v any, vars map[string]string) any {
	switch v := v.(type) {
	case string:
		return varRE.ReplaceAllStringFunc(v, func(m string) string {
			if r, ok := vars[m[2:len(m)-1]]; ok {
				return r
			}
			return m
		})
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = expand(x, vars)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = expand(x, vars)
		}
		return out
	}
	return v
}

// TestAppContractCoversTheParsers: the fixture checks every key the apps'
// parsers read from a push (the list is the keys named in
// NotificationIngressParser.kt and NotificationPayloadSemantics.swift /
// NotificationHandling.swift that our pushes can carry), so a key cannot
// drop out of the fixture unnoticed.
func TestAppContractCoversTheParsers(t *testing.T) {
	c := loadContract(t)
	checked := map[string]bool{}
	for _, s := range c.Scenarios {
		for _, x := range s.Expect {
			if k, ok := strings.CutPrefix(x.Path, "data."); ok && x.Is != "absent" {
				checked[k] = true
			}
		}
	}
	read := []string{
		// Android NotificationIngressParser.kt
		"title", "body", "channel_id", "url", "delivery_id", "message_id", "severity", "entity_type", "sent_at", "ttl",
		"occurred_at", "thing_id", "event_id", "entity_id", "op_id", "event_state", "event_time", "observed_at",
		"images", "provider_mode", "provider_wakeup",
		// Apple NotificationPayloadSemantics.swift, NotificationHandling.swift
		"description", "message", "status", "state", "attrs", "_skip_persist", "base_url", "tags", "metadata",
		// Apple ProviderDeliveryAckFailureStore.swift (a direct push's ack)
		"provider_device_key",
		// Apple EntityScreens.swift (entity patches)
		"started_at", "ended_at", "created_at", "deleted_at", "location_type", "location_value", "location", "external_ids",
	}
	for _, k := range read {
		if !checked[k] {
			t.Errorf("the app contract fixture checks no push for %q", k)
		}
	}
	if missing := slices.DeleteFunc(slices.Sorted(maps.Keys(checked)), func(k string) bool { return slices.Contains(read, k) }); len(missing) > 0 {
		t.Logf("also checked: %v", missing)
	}
}

// TestQuietThingUpdatesOption: PushGo rings for thing updates, and so do
// we by default (TestAppContract); a channel listed in QuietThingUpdates
// (PUSHGO_THING_UPDATE_QUIET) gets them as background pushes, unless it is
// also in ThingUpdateAlerts.
func TestQuietThingUpdatesOption(t *testing.T) {
	e := setup(t)
	quiet := e.post("/channel/create", map[string]any{"channel_name": "quiet", "password": pw})["channel_id"].(string)
	loud := e.post("/channel/create", map[string]any{"channel_name": "loud", "password": pw})["channel_id"].(string)
	// A pusher configured with both channels known: quiet everywhere, the
	// loud channel exempted.
	if err := e.push.Close(); err != nil {
		t.Fatal(err)
	}
	e.push = e.start(func(cfg *pusher.Config) {
		cfg.QuietThingUpdates = []string{"*"}
		cfg.ThingUpdateAlerts = []string{loud}
	})
	for _, c := range []struct {
		ch         string
		background bool
	}{{quiet, true}, {loud, false}} {
		apnsTok, fcmTok := tokens("quiet-option-" + c.ch)
		e.device("ios", "apns", apnsTok, c.ch)
		e.device("android", "fcm", fcmTok, c.ch)
		id := e.post("/thing/create", map[string]any{"channel_id": c.ch, "password": pw, "title": "NAS", "observed_at": 1713750000000})["thing_id"].(string)
		e.post("/thing/update", map[string]any{"channel_id": c.ch, "password": pw, "thing_id": id, "observed_at": 1713750060000,
			"attrs": map[string]any{"temp": 44}})
		waitFor(t, "both pushes", func() bool { return len(e.apns.Received(apnsTok)) == 2 && len(e.fcm.Received(fcmTok)) == 2 })
		a, f := e.apns.Received(apnsTok), e.fcm.Received(fcmTok)
		// The create rings either way; the update is quiet on the quiet
		// channel. On FCM both go at normal priority: the Android app shows
		// no Thing (payload.androidShows).
		if a[0].Background || !a[0].High || f[0].High {
			t.Errorf("%s create: apns background=%v high=%v, fcm high=%v", c.ch, a[0].Background, a[0].High, f[0].High)
		}
		if a[1].Background != c.background || a[1].Alert == c.background || a[1].High == c.background || f[1].High {
			t.Errorf("%s update: apns background=%v alert=%v high=%v, fcm high=%v; want background %v",
				c.ch, a[1].Background, a[1].Alert, a[1].High, f[1].High, c.background)
		}
		for _, o := range append(a, f...) {
			if len(o.Problems) > 0 {
				t.Errorf("%s: provider problems %v", c.ch, o.Problems)
			}
		}
	}
}

// logSeq is the log sequence a push's delivery id ("<seq>:<device>")
// names.
func logSeq(t *testing.T, deliveryID any) uint64 {
	t.Helper()
	id, _ := deliveryID.(string)
	seq, err := strconv.ParseUint(strings.SplitN(id, ":", 2)[0], 10, 64)
	if err != nil {
		t.Fatalf("push with delivery id %q: not <seq>:<device>", id)
	}
	return seq
}
