package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
)

// TestConsole drives the channel console (/console) in headless Chromium
// against a real gateway, as a person would: a wrong password is refused
// with a clear message; after sign-in the timeline of an Event opened
// before is read from the history on request; a Thing updated and created
// over the API while the page is open changes on the page without a
// reload, an Event opened and then closed shows each status; the history pages
// forward and back; a message sent from the page is accepted and appears
// in the history live; an integration token created over the API before
// sign-in is listed (name, id, scopes, creation time; no secret) and
// revoked from the page (and stops working); an integration token is
// created (shown once, and it works) and revoked (and stops working); the stream resumes after the
// gateway is killed and restarted; sign-out forgets the channel. Through
// all of it the password appears in no URL the browser requested and in no
// storage, the page requests nothing outside the gateway (it works
// offline), and it throws nothing and breaks no Content-Security-Policy
// rule. On a private gateway (PUSHGO_TOKEN) the page loads, asks for
// the API token, and works with it.
//
// On failure the page's screenshot is written to a directory the log
// names. With PUSHGO_UPDATE_SCREENSHOTS=1 a passing run writes the
// README's screenshots to docs/console/ (desktop and 360 px phone width).
func TestConsole(t *testing.T) {
	chrome := chromiumPath(t)
	dataDir := t.TempDir()
	g := startGateway(t, gwConfig{DataDir: dataDir})
	const password = "console-correct-horse"
	ch := createChannel(t, g, "home", password)
	api := consoleAPI{t: t, g: g, ch: ch, password: password}

	// Before the page opens: a Thing, an Event updated once and 24
	// messages, so the history holds more than one page (the console shows
	// 20 operations a page).
	nas := api.write("/thing/create", thingKeys, map[string]any{"title": "Home NAS", "observed_at": nowMillis(),
		"location_type": "physical", "location_value": "home/living-room", "tags": []string{"nas", "home"},
		"attrs": map[string]any{"temperature": 43.2, "online": true, "disk_used": 0.72}})["thing_id"].(string)
	cert := api.write("/event/create", eventKeys, map[string]any{"title": "Certificate renewal", "status": "pending",
		"message": "Renewal requested", "severity": "low", "event_time": nowMillis()})["event_id"].(string)
	api.write("/event/update", eventKeys, map[string]any{"event_id": cert, "status": "validating",
		"message": "DNS challenge published", "severity": "low", "event_time": nowMillis()})
	// An event opened and closed before sign-in, after the newest
	// operation the lists reflect: the stream replays it, and it is no
	// open event (it was listed under Open events, CLOSED).
	old := api.write("/event/create", eventKeys, map[string]any{"title": "Old deploy", "status": "running",
		"message": "Deploying", "severity": "low", "event_time": nowMillis()})["event_id"].(string)
	api.write("/event/close", eventKeys, map[string]any{"event_id": old, "status": "done",
		"message": "Deployed", "severity": "low", "event_time": nowMillis()})
	early := api.write("/channel/token/create", []string{"channel_id", "token_id", "token", "name", "scopes", "created_at"}, map[string]any{"name": "alertmanager (before)",
		"scopes": []string{"events.ingest", "events.read"}})
	earlyID, earlyToken := early["token_id"].(string), early["token"].(string)
	for i := range 24 {
		api.write("/message", messageKeys, map[string]any{"title": fmt.Sprintf("Nightly report %02d", i+1), "severity": "low"})
	}

	p := openConsole(t, chrome)
	// The browser talks to the gateway through a validating proxy: every
	// exchange the page makes (page, assets, API calls, the stream) is
	// checked against the OpenAPI document like the suite's own clients'.
	front := apiValidatingProxy(t, g.base)
	p.navigate(front + "/console") // the redirect to /console/ included
	p.waitJS("the page is ready", `document.documentElement.dataset.ready === 'true'`)
	p.measureFirstLoad()
	if bad := p.eval(`(() => {
		const bad = [];
		for (const f of document.querySelectorAll('input, select, textarea')) if (!f.labels || !f.labels.length) bad.push('unlabelled #' + f.id);
		for (const l of ['header', 'nav', 'main', 'footer']) if (!document.querySelector(l)) bad.push('no <' + l + '>');
		if (!document.querySelector('[aria-live]')) bad.push('no live region');
		return bad.join(', ');
	})()`); bad != "" {
		t.Errorf("accessibility: %s", bad)
	}

	t.Log("a wrong password is refused with a clear message")
	p.fill("#in-channel", ch)
	p.fill("#in-password", "not-the-password")
	p.click("#signin-submit")
	p.waitJS("the wrong-password message", `document.getElementById('signin-error').textContent === 'Wrong password for this channel.'`)
	if p.eval(`String(document.getElementById('app').hidden)`) != "true" {
		t.Fatal("the channel's data is shown after a wrong password")
	}

	t.Log("sign in")
	p.fill("#in-password", password)
	p.click("#signin-submit")
	p.waitJS("the stream is live", `document.getElementById('conn').dataset.state === 'live'`)
	p.waitText("#thing-"+nas+` dd[data-attr="temperature"]`, "43.2")
	if v := p.eval(`document.getElementById('in-password').value`); v != "" {
		t.Errorf("the password field still holds %q after sign-in", v)
	}

	t.Log("the timeline of an event opened before sign-in, read from the history")
	p.click("#event-" + cert + " button.timeline-all")
	p.waitJS("the event's whole timeline", `(() => {
		const items = [...document.querySelectorAll('#event-`+cert+` ol.timeline li')].map(li => li.textContent);
		return items.length === 2 && items[0].includes('event.create') && items[0].includes('pending') &&
			items[1].includes('event.update') && items[1].includes('validating');
	})()`)

	if got := p.eval(`String(document.querySelectorAll('ol.timeline').length > 0 && [...document.querySelectorAll('ol.timeline')].every(o => o.getAttribute('aria-label') === 'Timeline'))`); got != "true" {
		t.Errorf("an event's timeline list has no accessible name (aria-label)")
	}

	t.Log("a Thing updated and one created over the API change the open page")
	api.write("/thing/update", thingKeys, map[string]any{"thing_id": nas, "observed_at": nowMillis(), "attrs": map[string]any{"temperature": 51.5}})
	p.waitText("#thing-"+nas+` dd[data-attr="temperature"]`, "51.5")
	p.waitText("#thing-"+nas+` dd[data-attr="online"]`, "true") // merged, not replaced
	// The replayed operations were read in order before this update's
	// (one refresh at a time): the closed event is not listed.
	if got := p.eval(`String(document.getElementById('event-` + old + `') === null && !document.getElementById('events-list').textContent.includes('Old deploy'))`); got != "true" {
		t.Errorf("an event closed before sign-in is listed under Open events")
	}
	garage := api.write("/thing/create", thingKeys, map[string]any{"title": "Garage door", "observed_at": nowMillis(),
		"attrs": map[string]any{"open": false, "battery": 0.91}})["thing_id"].(string)
	p.waitText("#thing-"+garage+` dd[data-attr="battery"]`, "0.91")

	t.Log("an Event opened and then closed shows each status")
	backup := api.write("/event/create", eventKeys, map[string]any{"title": "Nightly backup", "status": "running",
		"message": "Backup started", "severity": "normal", "event_time": nowMillis(), "attrs": map[string]any{"progress": 0.1}})["event_id"].(string)
	p.waitText("#event-"+backup+` [data-field="status"]`, "running")
	p.waitText("#event-"+backup+` [data-field="state"]`, "ONGOING")
	api.write("/event/close", eventKeys, map[string]any{"event_id": backup, "status": "success", "message": "Backup finished",
		"severity": "normal", "event_time": nowMillis(), "attrs": map[string]any{"progress": 1}})
	p.waitText("#event-"+backup+` [data-field="state"]`, "CLOSED")
	p.waitText("#event-"+backup+` [data-field="status"]`, "success")
	p.waitJS("the event's timeline shows its create and close", `(() => {
		const items = [...document.querySelectorAll('#event-`+backup+` ol.timeline li')].map(li => li.textContent);
		return items.some(s => s.includes('event.create') && s.includes('running')) && items.some(s => s.includes('event.close') && s.includes('success'));
	})()`)
	scrub := api.write("/event/create", eventKeys, map[string]any{"title": "Disk 2 SMART warning", "status": "degraded",
		"message": "Reallocated sectors: 12", "severity": "high", "event_time": nowMillis(), "thing_id": nas})["event_id"].(string)
	p.waitText("#event-"+scrub+` [data-field="severity"]`, "high")

	t.Log("the history pages forward and back")
	p.waitJS("history page 1 is full", `document.querySelectorAll('#hist-list li').length === 20 && !document.getElementById('hist-next').disabled`)
	page1 := p.historySeqs()
	p.click("#hist-next")
	p.waitJS("history page 2", `document.getElementById('hist-page').textContent.startsWith('Page 2')`)
	page2 := p.historySeqs()
	if len(page2) == 0 || page2[0] <= page1[len(page1)-1] || !slices.IsSorted(page2) {
		t.Fatalf("page 2 %v does not follow page 1 %v", page2, page1)
	}
	p.click("#hist-prev")
	p.waitJS("history page 1 again", `document.getElementById('hist-page').textContent.startsWith('Page 1')`)
	if back := p.historySeqs(); !slices.Equal(back, page1) {
		t.Fatalf("page 1 after paging back is %v, was %v", back, page1)
	}
	p.click("#hist-next")
	p.waitJS("history page 2 again", `document.getElementById('hist-page').textContent.startsWith('Page 2')`)

	t.Log("a message sent from the page is accepted and joins the history live")
	p.fill("#msg-title", "Hello from the console")
	p.fill("#msg-body", "Sent by the browser test")
	p.click("#send-form button[type=submit]")
	p.waitJS("the message is accepted", `!!document.getElementById('send-result').dataset.messageId`)
	msgID := p.eval(`document.getElementById('send-result').dataset.messageId`)
	p.waitJS("the message in the history", `[...document.querySelectorAll('#hist-list li')].some(li => li.textContent.includes('Hello from the console'))`)
	if !api.historyHas(msgID) {
		t.Errorf("message %s, accepted on the page, is not in the channel's history", msgID)
	}
	p.screenshotFor("desktop.png", true)

	t.Log("a message whose answer is lost is sent again with its op_id: stored once")
	// The next answer of POST /message is lost on its way to the page,
	// after the gateway stored the message: the connection dropped, or a
	// 200 cut before its body ended.
	sendLosingTheAnswer(t, p, api, "Sent once though sent twice", "throw new TypeError('the connection was lost')")
	sendLosingTheAnswer(t, p, api, "Cut mid-answer, sent once",
		`return new Response('{"succ', { status: 200, headers: { 'Content-Type': 'application/json' } })`)

	t.Log("a token created over the API before sign-in is listed, without its secret, and revoked from the page")
	p.waitJS("the earlier token listed", `(() => {
		const li = document.getElementById('token-`+earlyID+`');
		return !!li && li.querySelector('strong').textContent === 'alertmanager (before)' &&
			li.querySelector('code').textContent === '`+earlyID+`' &&
			li.querySelector('[data-field="scopes"]').textContent === 'events.ingest, events.read' && !!li.querySelector('time');
	})()`)
	if found := p.eval(`String(document.documentElement.outerHTML.includes(` + jsString(earlyToken[len(earlyToken)-64:]) + `))`); found != "false" {
		t.Error("the listed token's secret is on the page")
	}
	if st := api.pagerDuty(earlyToken); st != http.StatusAccepted {
		t.Fatalf("the token created over the API does not work: PagerDuty enqueue answered %d", st)
	}
	p.click("#token-" + earlyID + " button")
	p.waitText("#token-"+earlyID+" button", "Confirm revoke")
	p.click("#token-" + earlyID + " button")
	p.waitJS("the earlier token revoked", `document.getElementById('token-`+earlyID+`').dataset.revoked === 'true'`)
	if st := api.pagerDuty(earlyToken); st == http.StatusAccepted {
		t.Fatal("the token created over the API still works after the page revoked it")
	}

	t.Log("an integration token: created and shown once, then revoked")
	p.fill("#tok-name", "grafana")
	p.click("#token-form button[type=submit]")
	p.waitJS("the new token", `document.getElementById('token-value').value.startsWith('pgo1.')`)
	token := p.eval(`document.getElementById('token-value').value`)
	tokenID := strings.Split(token, ".")[1] // pgo1.<id>.<secret>
	p.waitJS("the new token listed", `!!document.getElementById('token-`+tokenID+`')`)
	if st := api.pagerDuty(token); st != http.StatusAccepted {
		t.Fatalf("the token the page showed does not work: PagerDuty enqueue answered %d", st)
	}
	p.click("#token-done")
	p.waitJS("the token hidden", `document.getElementById('token-created').hidden`)
	if found := p.eval(`(() => { const tok = ` + jsString(token) + `;
		return String(document.documentElement.outerHTML.includes(tok) || [...document.querySelectorAll('input, textarea')].some(i => i.value.includes(tok)));
	})()`); found != "false" {
		t.Error("the token is still on the page after 'I have copied it'")
	}
	p.click("#token-" + tokenID + " button")
	p.waitText("#token-"+tokenID+" button", "Confirm revoke")
	p.click("#token-" + tokenID + " button")
	p.waitJS("the token revoked", `document.getElementById('token-`+tokenID+`').dataset.revoked === 'true'`)
	if st := api.pagerDuty(token); st == http.StatusAccepted {
		t.Fatal("the token still works after the page revoked it")
	}

	t.Log("usable at a phone's width")
	p.phone(func() {
		if w := p.eval(`String(document.documentElement.scrollWidth)`); w != "360" {
			t.Errorf("at 360 px the page is %s px wide (it scrolls sideways)", w)
		}
		p.screenshotFor("phone.png", false)
	})

	t.Log("the stream resumes after the gateway is killed and restarted")
	g.kill()
	p.waitJS("the page says it is reconnecting", `document.getElementById('conn').dataset.state === 'reconnecting'`)
	g2 := startGateway(t, gwConfig{DataDir: dataDir, HTTPAddr: hostPort(g.base), NATSAddr: hostPort(g.natsURL)})
	p.waitJS("live again", `document.getElementById('conn').dataset.state === 'live'`)
	api.g = g2
	api.write("/thing/update", thingKeys, map[string]any{"thing_id": nas, "observed_at": nowMillis(), "attrs": map[string]any{"temperature": 47.25}})
	p.waitText("#thing-"+nas+` dd[data-attr="temperature"]`, "47.25")
	if !p.resumed() {
		t.Error("no /channel/stream request carried Last-Event-ID: the stream restarted instead of resuming")
	}

	t.Log("the password is in no URL and no storage")
	p.checkSecretsStayOut(password, token, earlyToken)

	t.Log("sign-out forgets the channel")
	p.click("#signout")
	p.waitJS("the sign-in form", `!document.getElementById('signin').hidden && document.getElementById('conn').dataset.state === 'signed-out'`)
	if left := p.eval(`String(document.querySelectorAll('#things-list li, #events-list li, #hist-list li, #token-list li').length)`); left != "0" {
		t.Errorf("%s items of the channel are still on the page after sign-out", left)
	}
	p.checkSecretsStayOut(password, token)

	t.Log("a private gateway: the page loads, asks for the API token, and works with it")
	apiToken := "console-private-" + randomHex(t, 8)
	gp := startGateway(t, gwConfig{DataDir: t.TempDir(), Token: apiToken})
	chp := createChannel(t, gp, "private", password)
	gpFront := apiValidatingProxy(t, gp.base)
	p.navigate(gpFront + "/console/")
	p.waitJS("the page is ready", `document.documentElement.dataset.ready === 'true'`)
	p.fill("#in-channel", chp)
	p.fill("#in-password", password)
	p.click("#signin-submit")
	p.waitJS("the request for the API token", `document.getElementById('signin-error').textContent.includes('private') && document.getElementById('private-box').open`)
	p.fill("#in-token", apiToken)
	p.fill("#in-password", password)
	p.click("#signin-submit")
	p.waitJS("live on the private gateway", `document.getElementById('conn').dataset.state === 'live'`)
	p.checkSecretsStayOut(password, token, apiToken)
	p.checkNoPageErrors()
	p.checkRequestsStayHome(front, gpFront)
}

// consoleAPI writes to the channel over the HTTP API, as another client
// would while the page is open.
type consoleAPI struct {
	t        *testing.T
	g        *gateway
	ch       string
	password string
}

func (a consoleAPI) write(path string, keys []string, body map[string]any) map[string]any {
	a.t.Helper()
	body["channel_id"], body["password"] = a.ch, a.password
	return mustOK(a.t, a.g.Post(a.t, path, mustJSON(a.t, body)), keys...)
}

// sendLosingTheAnswer sends a test Message titled title from the page
// while the first answer of POST /message is lost as lose (a statement of
// the page's fetch: a throw or a return) after the gateway stored the
// message; the page must say Not confirmed, and Send again must store it
// once, not twice.
func sendLosingTheAnswer(t *testing.T, p *consolePage, api consoleAPI, title, lose string) {
	t.Helper()
	p.eval(`(() => {
		const real = window.fetch;
		let lost = false;
		window.fetch = async (u, o) => {
			const r = await real(u, o);
			if (!lost && String(u).endsWith('/message')) { lost = true; ` + lose + `; }
			return r;
		};
		return '';
	})()`)
	p.fill("#msg-title", title)
	p.click("#send-form button[type=submit]")
	p.waitJS("the lost answer said", `document.getElementById('send-result').textContent.startsWith('Not ')`)
	if said := p.eval(`document.getElementById('send-result').textContent`); !strings.HasPrefix(said, "Not confirmed:") {
		t.Errorf("%q: a lost answer is said as %q; want Not confirmed (the message may have been stored)", title, said)
	}
	p.click("#send-form button[type=submit]")
	p.waitJS("the message sent again is accepted", `!!document.getElementById('send-result').dataset.messageId`)
	if n := api.historyCount(func(it map[string]any) bool { return strings.Contains(string(mustJSON(t, it)), title) }); n != 1 {
		t.Errorf("%q, sent again after its answer was lost, is %d times in the history, want once", title, n)
	}
}

// historyHas reports whether the channel's history holds an operation on
// entity id.
func (a consoleAPI) historyHas(id string) bool {
	a.t.Helper()
	return a.historyCount(func(it map[string]any) bool { return it["entity_id"] == id }) > 0
}

// historyCount counts the operations of the channel's history that match.
func (a consoleAPI) historyCount(match func(item map[string]any) bool) int {
	a.t.Helper()
	var after *uint64
	n := 0
	for {
		body := map[string]any{"channel_id": a.ch, "password": a.password, "limit": 1000}
		if after != nil {
			body["after"] = *after
		}
		data := mustOK(a.t, a.g.Post(a.t, "/channel/history", mustJSON(a.t, body)), "items", "next_after", "has_more", "first_seq")
		for _, it := range data["items"].([]any) {
			if match(it.(map[string]any)) {
				n++
			}
		}
		if data["has_more"] != true {
			return n
		}
		next, err := data["next_after"].(json.Number).Int64()
		if err != nil {
			a.t.Fatalf("next_after: %v", err)
		}
		u := uint64(next)
		after = &u
	}
}

// pagerDuty sends one PagerDuty Events v2 trigger with token as the
// routing key and answers the status (202 when the token is valid).
func (a consoleAPI) pagerDuty(token string) int {
	a.t.Helper()
	r := a.g.Post(a.t, "/v2/enqueue", mustJSON(a.t, map[string]any{"routing_key": token, "event_action": "trigger",
		"payload": map[string]any{"summary": "Token check from the console test", "source": "e2e", "severity": "info"}}))
	return r.Status
}

func nowMillis() int64 { return time.Now().UnixMilli() }

func jsString(s string) string { return string(mustJSON(nil, s)) }

// consolePage is one browser tab on the console, with what it requested.
type consolePage struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	requests []sentRequest
	problems []string // exceptions and CSP violations
}

type sentRequest struct {
	url     string
	headers map[string]string // lower-case names
}

// openConsole starts headless Chromium with a new empty profile, records
// every request the page sends and every exception and security message,
// and at cleanup saves a screenshot when the test failed.
func openConsole(t *testing.T, chrome string) *consolePage {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	p := &consolePage{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a timeout (it would stop it)
		t.Fatalf("start Chromium %s: %v", chrome, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			h := map[string]string{}
			for k, v := range ev.Request.Headers {
				h[strings.ToLower(k)] = fmt.Sprint(v)
			}
			p.requests = append(p.requests, sentRequest{url: ev.Request.URL + ev.Request.URLFragment, headers: h})
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			p.problems = append(p.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Source == cdplog.EntrySourceSecurity || ev.Entry.Source == cdplog.EntrySourceJavascript {
				p.problems = append(p.problems, string(ev.Entry.Source)+": "+ev.Entry.Text)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("console: no failure screenshot: %v", err)
			return
		}
		dir, err := os.MkdirTemp("", "pushgo-console-failure-")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "console.png"), shot, 0o644)
		}
		if err != nil {
			t.Logf("console: failure screenshot not saved: %v", err)
			return
		}
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Logf("console: screenshot of the failing page: %s\n---- page text ----\n%s\n---- end ----", filepath.Join(dir, "console.png"), tail(text, 4000))
	})
	return p
}

// run runs steps within a bound, failing the test with what was done.
func (p *consolePage) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("console: %s: %v", what, err)
	}
}

func (p *consolePage) navigate(u string) {
	p.t.Helper()
	p.run("open "+u, chromedp.Navigate(u))
}

// click clicks the element sel selects. The console re-renders a list
// when the stream brings news (an update, a reconnect's catch-up), which
// can replace the element between chromedp's finding its node and
// clicking it: then the element is found again and clicked, within the
// step's bound (seen once under make test's load: "Could not find node
// with given id").
func (p *consolePage) click(sel string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	for {
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		if err == nil {
			return
		}
		replaced := strings.Contains(err.Error(), "Could not find node with given id") ||
			strings.Contains(err.Error(), "Node is detached from document")
		if !replaced || ctx.Err() != nil {
			p.t.Fatalf("console: click %s: %v", sel, err)
		}
	}
}

// fill replaces an input's text by typing.
func (p *consolePage) fill(sel, text string) {
	p.t.Helper()
	p.run("type into "+sel, chromedp.Evaluate[chromedp.Void](`document.querySelector(`+jsString(sel)+`).value = ''`),
		chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (p *consolePage) eval(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("console: evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is truthy in the page: a DOM change, never a sleep.
func (p *consolePage) waitJS(what, expr string) {
	p.t.Helper()
	p.run("wait for "+what+" ("+expr+")", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(25*time.Second))(ctx, t)
		return err
	}))
}

// waitText waits until the element sel exists with exactly text.
func (p *consolePage) waitText(sel, text string) {
	p.t.Helper()
	p.waitJS(sel+" = "+text, `document.querySelector(`+jsString(sel)+`)?.textContent === `+jsString(text))
}

func (p *consolePage) historySeqs() []int {
	p.t.Helper()
	var seqs []int
	if err := json.Unmarshal([]byte(p.eval(`JSON.stringify([...document.querySelectorAll('#hist-list li')].map(li => Number(li.dataset.seq)))`)), &seqs); err != nil {
		p.t.Fatal(err)
	}
	return seqs
}

// measureFirstLoad logs the first paint and the bytes the first load of
// the console transferred (the README states them).
func (p *consolePage) measureFirstLoad() {
	p.t.Helper()
	p.waitJS("the first contentful paint", `performance.getEntriesByType('paint').some(e => e.name === 'first-contentful-paint')`)
	p.t.Logf("console first load: %s", p.eval(`JSON.stringify({
		paint: Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, Math.round(e.startTime)])),
		domContentLoaded: Math.round(performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd),
		transferred: performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
			.map(e => e.name.replace(location.origin, '') + ' ' + e.transferSize + ' B (' + e.encodedBodySize + ' B body)'),
	})`))
}

// resumed reports whether a stream request carried Last-Event-ID.
func (p *consolePage) resumed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.requests {
		if strings.Contains(r.url, "/channel/stream") && r.headers["last-event-id"] != "" {
			return true
		}
	}
	return false
}

// checkSecretsStayOut fails the test if a secret was in a URL the browser
// requested or a Referer it sent, or is in the page's storage or cookies.
func (p *consolePage) checkSecretsStayOut(secrets ...string) {
	p.t.Helper()
	p.mu.Lock()
	reqs := slices.Clone(p.requests)
	p.mu.Unlock()
	streams := 0
	for _, r := range reqs {
		if slices.ContainsFunc(secrets, func(s string) bool {
			return slices.ContainsFunc([]string{s, url.QueryEscape(s), url.PathEscape(s)}, func(form string) bool {
				return strings.Contains(r.url, form) || strings.Contains(r.headers["referer"], form)
			})
		}) {
			p.t.Errorf("a secret is in a URL the page requested (or its Referer): %s", r.url)
		}
		if strings.Contains(r.url, "/channel/stream") {
			streams++
			if r.headers["x-pushgo-password"] == "" {
				p.t.Errorf("the stream request %s carries no X-PushGo-Password header", r.url)
			}
		}
	}
	if streams == 0 {
		p.t.Error("the network log holds no /channel/stream request")
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => JSON.stringify({
		local: Object.entries(localStorage), session: Object.entries(sessionStorage), cookie: document.cookie,
		indexedDB: (await indexedDB.databases()).map(d => d.name), caches: await caches.keys().catch(() => []),
	}))()`, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("read the page's storage: %v", err)
	}
	if want := `{"local":[],"session":[],"cookie":"","indexedDB":[],"caches":[]}`; stored != want {
		p.t.Errorf("the page stored something: %s", stored)
	}
	cookies, err := chromedp.CallBrowser(ctx, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil {
		p.t.Fatalf("read the browser's cookies: %v", err)
	}
	if len(cookies.Cookies) != 0 {
		p.t.Errorf("the browser holds %d cookies", len(cookies.Cookies))
	}
}

// checkRequestsStayHome fails the test if the page requested anything from
// another origin than the gateways it was opened on (a CDN, a font): the
// console works offline.
func (p *consolePage) checkRequestsStayHome(origins ...string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.requests {
		if !slices.ContainsFunc(origins, func(o string) bool { return strings.HasPrefix(r.url, o+"/") }) && !strings.HasPrefix(r.url, "data:") {
			p.t.Errorf("the page requested %s, outside the gateway", r.url)
		}
	}
}

func (p *consolePage) checkNoPageErrors() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.problems {
		p.t.Errorf("the page reported: %s", s)
	}
}

// phone runs f with the viewport of a 360 px wide phone, then restores it.
func (p *consolePage) phone(f func()) {
	p.t.Helper()
	p.run("phone viewport", chromedp.EmulateViewport(360, 780, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	f()
	p.run("desktop viewport", chromedp.EmulateReset())
}

// screenshotFor writes the viewport (the whole page when full) to
// docs/console/name when
// PUSHGO_UPDATE_SCREENSHOTS=1 (the README shows them); make test leaves
// the tree as it is.
func (p *consolePage) screenshotFor(name string, full bool) {
	p.t.Helper()
	if os.Getenv("PUSHGO_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	p.run("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0); document.activeElement?.blur()`))
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	shoot := chromedp.CaptureScreenshot()
	if full {
		shoot = chromedp.FullScreenshot(100)
	}
	shot, err := chromedp.Run(ctx, shoot)
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "docs", "console", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote %s (%d bytes)", path, len(shot))
}
