package compat

import (
	"mime"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/ingest/httpapi"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// ntfy (PushGo's compat/ntfy.rs, routes in src/api/handlers/mod.rs):
//
//	POST|PUT     /ntfy/{topic}                     the message in the body (or the message parameter)
//	POST|PUT|GET /ntfy/{topic}/publish|send|trigger
//	POST|PUT     /ntfy                             ntfy's JSON publishing: {"topic", "message", ...}
//
// The topic is the compat key "<channel_id>:<password>". Parameters come as
// ntfy's headers or query parameters (every spelling ntfy accepts; the
// query wins over a header, as PushGo), plus PushGo's own query parameters
// (body, severity, url, op_id, occurred_at, ttl, images, ciphertext, tags,
// metadata).

// Route patterns of ntfy; OwnAuth lists them.
const (
	RouteNtfy        = "/ntfy/:topic"
	RouteNtfyPublish = "/ntfy/:topic/publish"
	RouteNtfySend    = "/ntfy/:topic/send"
	RouteNtfyTrigger = "/ntfy/:topic/trigger"
	RouteNtfyJSON    = "/ntfy"
	RouteNtfyJSONDir = "/ntfy/"
)

var ntfyRoutes = map[string]bool{RouteNtfy: true, RouteNtfyPublish: true, RouteNtfySend: true,
	RouteNtfyTrigger: true, RouteNtfyJSON: true, RouteNtfyJSONDir: true}

func (r *Routes) routeNtfy(e *echo.Echo) {
	// A GET publishes only on the routes that say so (ntfy's own rule): a
	// GET of the topic itself is what a browser, a link preview or
	// UnifiedPush's discovery sends, and must not push every device (ntfy
	// serves its web app there; here it is 405 and appends nothing).
	e.Match([]string{http.MethodPost, http.MethodPut}, RouteNtfy, r.ntfy)
	for _, route := range []string{RouteNtfyPublish, RouteNtfySend, RouteNtfyTrigger} {
		e.Match([]string{http.MethodPost, http.MethodPut, http.MethodGet}, route, r.ntfy)
	}
	e.Match([]string{http.MethodPost, http.MethodPut}, RouteNtfyJSON, r.ntfyJSON)
	e.Match([]string{http.MethodPost, http.MethodPut}, RouteNtfyJSONDir, r.ntfyJSON)
}

// ntfyRefused are ntfy's features a message here cannot have.
var ntfyRefused = map[string]string{
	"delay":    "scheduled delivery is not supported: the message would be sent at once",
	"email":    "e-mail notifications are not supported",
	"call":     "phone calls are not supported",
	"thing_id": "thing_id is not accepted on the compat routes (as PushGo); use POST /message",
}

// ntfyFilenameRefused is why a filename without attach is refused: ntfy
// then expects the body to be the file. With attach it names the linked
// file (ntfy's publishing of a URL attachment), and is dropped here.
const ntfyFilenameRefused = "file attachments are not supported; attach a URL with attach"

// ntfyQuery is the query vocabulary of /ntfy/{topic}: ntfy's lower-case
// spellings and PushGo's own parameters.
var ntfyQuery = vocabulary{
	names: map[string]string{
		"x-title": "title", "title": "title", "ti": "title", "t": "title",
		"x-message": "message", "message": "message", "m": "message",
		"body":       "body",
		"x-priority": "priority", "priority": "priority", "prio": "priority", "p": "priority",
		"severity": "severity",
		"x-tags":   "tags", "tags": "tags", "tag": "tags", "ta": "tags",
		"x-click": "click", "click": "click", "url": "url",
		"x-attach": "attach", "attach": "attach", "a": "attach",
		"x-icon": "icon", "icon": "icon",
		"op_id": "op_id", "occurred_at": "occurred_at", "ttl": "ttl", "images": "images",
		"ciphertext": "ciphertext", "metadata": "metadata",
		// Accepted, no effect here: Markdown (the apps render the body as
		// Markdown anyway), ntfy's delivery switches, its notification
		// replacement ids, the access token (checked by auth.go).
		"x-markdown": "", "markdown": "", "md": "", "x-cache": "", "cache": "", "x-firebase": "", "firebase": "",
		"x-unifiedpush": "", "unifiedpush": "", "up": "", "x-poll-id": "", "poll-id": "",
		"x-sequence-id": "", "sequence-id": "", "sid": "", "auth": "", "authorization": "",
		// Action buttons, which the apps cannot show: accepted, a "view"
		// action's URL the link when there is no click (Uptime Kuma sends
		// one with every alert of a monitor that has a URL).
		"x-actions": "actions", "actions": "actions", "action": "actions",
		"x-filename": "filename", "filename": "filename", "file": "filename", "f": "filename",
		// ntfy's template switch: refused when on (ntfyTemplateOn).
		"x-template": "template", "template": "template", "tpl": "template",
	},
	refused: spellings(ntfyRefused, map[string][]string{
		"delay":    {"x-delay", "delay", "x-at", "at", "x-in", "in"},
		"email":    {"x-email", "x-e-mail", "email", "e-mail", "mail", "e"},
		"call":     {"x-call", "call"},
		"thing_id": {"thing_id"},
	}),
}

// ntfyHeaders are ntfy's header spellings of each parameter, in ntfy's
// order of preference.
var ntfyHeaders = []struct {
	canon string
	names []string
}{
	{"title", []string{"X-Title", "Title", "Ti", "T"}},
	{"message", []string{"X-Message", "Message", "M"}},
	{"priority", []string{"X-Priority", "Priority", "Prio", "P"}},
	{"tags", []string{"X-Tags", "Tags", "Tag", "Ta"}},
	{"click", []string{"X-Click", "Click"}},
	{"attach", []string{"X-Attach", "Attach", "A"}},
	{"icon", []string{"X-Icon", "Icon"}},
	{"actions", []string{"X-Actions", "Actions", "Action"}},
	{"filename", []string{"X-Filename", "Filename", "File"}},
}

// ntfyTemplateRefused is why a template switched on is refused: ntfy
// renders the JSON body through a template (Grafana's, GitHub's, or the
// Title and Message as Go templates), and ignoring the switch would push
// the raw JSON and "{{.title}}".
const ntfyTemplateRefused = "message templates are not supported: the body would be delivered as sent, not rendered"

// ntfyTemplateOn reports whether a value of ntfy's template switch asks
// for a template: any but blank and ntfy's false values (0, no, false).
func ntfyTemplateOn(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "no", "false", "off":
		return false
	}
	return true
}

// ntfyTemplateQuery refuses the query's template switch when it is on.
func ntfyTemplateQuery(q params) *apierr.Error {
	if v, ok := q["template"]; ok && ntfyTemplateOn(v.text) {
		return apierr.Fieldf(apierr.InvalidQuery, safeName(v.name), "%s", ntfyTemplateRefused)
	}
	return nil
}

// ntfyRefusedHeaders are the headers of ntfyRefused's features (ntfy's
// one-letter spellings left out: too easily some proxy's).
var ntfyRefusedHeaders = map[string][]string{
	"delay": {"X-Delay", "Delay", "X-At", "At", "X-In", "In"},
	"email": {"X-Email", "X-E-Mail", "Email", "E-Mail", "Mail"},
	"call":  {"X-Call", "Call"},
	// ntfy's template switch, refused only when on (ntfyTemplateOn).
	"template": {"X-Template", "Template", "Tpl"},
}

// ntfyJSONVocabulary is the vocabulary of ntfy's JSON publishing, plus
// op_id.
var ntfyJSONVocabulary = vocabulary{
	names: map[string]string{
		"topic": "topic", "message": "message", "title": "title", "priority": "priority", "tags": "tags",
		"click": "click", "attach": "attach", "icon": "icon", "op_id": "op_id", "filename": "filename",
		"markdown": "", "cache": "", "firebase": "", "sequence_id": "",
		// A list of objects: read by ntfyViewURL, not as a parameter.
		"actions": "",
	},
	refused: spellings(ntfyRefused, map[string][]string{
		"delay": {"delay"}, "email": {"email"}, "call": {"call"},
	}),
	// ntfy's JSON publishing skips a zero priority and empty strings and
	// lists (server/types.go publishMessage, transformBodyJSON): a client
	// that serialises every field sends them.
	zeroIsAbsent: true,
	// ntfy decodes the body with encoding/json, which matches member names
	// case-insensitively: PowerShell's ConvertTo-Json of ntfy's own
	// examples sends Topic, Message, Actions.
	foldCase: true,
}

// ntfy serves /ntfy/{topic} and its /publish, /send and /trigger forms.
func (r *Routes) ntfy(c *echo.Context) error {
	if ok, err := r.auth.check(c); !ok {
		return err
	}
	req := &ops.MessageRequest{}
	topic, aerr := pathParam(c, "topic", false)
	if aerr == nil {
		aerr = setKey(req, topic, "topic")
	}
	var q, h params
	if aerr == nil {
		q, aerr = fromQuery(ntfyQuery, c)
	}
	if aerr == nil {
		aerr = ntfyTemplateQuery(q)
	}
	if aerr == nil {
		h, aerr = ntfyHeaderParams(c.Request().Header)
	}
	if aerr == nil {
		code := apierr.InvalidRequestBody // the header's
		if q.has("filename") {
			code = apierr.InvalidQuery
		}
		aerr = ntfyFilename(q.or(h), code)
	}
	var body []byte
	if aerr == nil && c.Request().Method != http.MethodGet {
		body, aerr = readBody(c)
	}
	if aerr == nil {
		aerr = ntfyMessage(req, q, h, body, r.d.MetadataValueMax)
	}
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	return r.send(c, req, ntfyAnswer)
}

// ntfyJSON serves ntfy's JSON publishing: POST /ntfy with {"topic": key,
// "message", "title", "priority" (1-5), "tags" (a list), "click",
// "attach", "icon"}.
func (r *Routes) ntfyJSON(c *echo.Context) error {
	if ok, err := r.auth.check(c); !ok {
		return err
	}
	req := &ops.MessageRequest{}
	body, aerr := readBody(c)
	var p, q, h params
	if aerr == nil {
		p, aerr = fromJSON(ntfyJSONVocabulary, body)
	}
	// ntfy turns the JSON's members into headers over the request's own
	// (server.go, transformBodyJSON), whose headers and query then apply
	// to what the JSON does not say (apprise sends X-Priority, X-Tags and
	// X-Click beside its JSON); its message becomes the body, as sent.
	if aerr == nil {
		q, aerr = fromQuery(ntfyQuery, c)
	}
	if aerr == nil {
		aerr = ntfyTemplateQuery(q)
	}
	if aerr == nil {
		h, aerr = ntfyHeaderParams(c.Request().Header)
	}
	if aerr == nil {
		aerr = setNtfyTopic(req, p)
	}
	var message []byte
	if m, ok := p["message"]; ok {
		message = []byte(m.text)
		delete(p, "message")
		delete(h, "message")
		delete(q, "message")
		delete(q, "body")
	}
	all := p.or(h).or(q)
	if aerr == nil {
		aerr = ntfyFilename(all, apierr.InvalidJSONData)
	}
	if aerr == nil {
		if _, clicked := all["click"]; !clicked {
			if u := ntfyJSONViewURL(body); u != "" {
				all["click"] = value{name: "actions", text: u}
			}
		}
		aerr = ntfyMessage(req, all, nil, message, r.d.MetadataValueMax)
	}
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	return r.send(c, req, ntfyAnswer)
}

func setNtfyTopic(req *ops.MessageRequest, p params) *apierr.Error {
	topic, aerr := p.text("topic")
	if aerr != nil {
		return aerr
	}
	if topic == nil {
		return apierr.Fieldf(apierr.ChannelIDRequired, "topic", "required: <channel_id>:<password>")
	}
	return setKey(req, *topic, "topic")
}

// ntfyHeaderParams reads ntfy's headers: each in ntfy's order of
// spellings, RFC 2047 encoded words decoded (as ntfy), UTF-8 required.
// The headers of refused features are rejected.
func ntfyHeaderParams(hd http.Header) (params, *apierr.Error) {
	for _, feature := range []string{"call", "delay", "email"} {
		for _, name := range ntfyRefusedHeaders[feature] {
			if hd.Get(name) != "" {
				return nil, apierr.Fieldf(apierr.InvalidRequestBody, name, "%s", ntfyRefused[feature])
			}
		}
	}
	for _, name := range ntfyRefusedHeaders["template"] {
		if ntfyTemplateOn(hd.Get(name)) {
			return nil, apierr.Fieldf(apierr.InvalidRequestBody, name, "%s", ntfyTemplateRefused)
		}
	}
	p := params{}
	dec := new(mime.WordDecoder)
	for _, f := range ntfyHeaders {
		for _, name := range f.names {
			v := hd.Get(name)
			if v == "" {
				continue
			}
			// The HTTP Priority header of RFC 9218 ("u=3, i"), which
			// browsers and proxies add, is not ntfy's (ntfy ignores it too).
			if f.canon == "priority" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "u=") {
				continue
			}
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
			if !utf8.ValidString(v) {
				return nil, apierr.Fieldf(apierr.InvalidRequestBody, name, "header is not valid UTF-8")
			}
			p[f.canon] = value{name: name, text: v}
			break
		}
	}
	return p, nil
}

// ntfyMessage converts ntfy parameters (q, then h, then the body) into
// req, as PushGo's CompatNtfyQuery::into_intent: the title from title (or
// "Notification"); the body from the message parameter, PushGo's body
// parameter, the Message header, or else the request body (trimmed, UTF-8
// text: ntfy's file uploads are not supported); the severity from
// PushGo's severity parameter or ntfy's priority (ntfyPriority); the link
// from url or click (mailto:, geo: and app links too: the apps open what
// they can); attach as one more image; icon kept in the metadata as
// compat.ntfy.icon.
func ntfyMessage(req *ops.MessageRequest, q, h params, body []byte, hintMax int) *apierr.Error {
	p := q.or(h)
	if err := setPushGoFields(req, p, ","); err != nil {
		return err
	}
	var err *apierr.Error
	if req.Title, err = p.text("title"); err != nil {
		return err
	}
	if req.Title == nil {
		req.Title = new(defaultTitle)
	}
	if req.Body, err = ntfyBody(q, h, body); err != nil {
		return err
	}
	// PushGo's severity wins over ntfy's priority; the parameters after
	// them apply either way (they were dropped when severity was given).
	if req.Severity, err = p.text("severity"); err != nil {
		return err
	}
	prio, err := p.text("priority")
	if err != nil {
		return err
	}
	if prio != nil && req.Severity == nil {
		sev, ok := ntfyPriority(*prio)
		if !ok {
			return apierr.Fieldf(apierr.InvalidSeverity, safeName(p["priority"].name), "ntfy priority must be 1-5, min, low, default, high, max or urgent")
		}
		req.Severity = &sev
	}
	if req.URL == nil {
		if req.URL, err = p.text("click"); err != nil {
			return err
		}
	}
	if req.URL == nil {
		actions, err := p.text("actions")
		if err != nil {
			return err
		}
		if actions != nil {
			if u := ntfyViewURL(*actions); u != "" {
				req.URL = &u
			}
		}
	}
	attach, err := p.text("attach")
	if err != nil {
		return err
	}

	if attach != nil {
		req.Images = append(req.Images, strings.TrimSpace(*attach))
	}
	icon, err := p.text("icon")
	if err != nil {
		return err
	}
	req.Metadata, err = withHints(req.Metadata, hintMax, hint{"compat.ntfy.icon", icon})
	return err
}

// ntfyBody is the message text, as PushGo picks it (the message
// parameter, PushGo's body parameter, the Message header, the request
// body). ntfy's message parameter and header write a line break as \n;
// the body (and a JSON publish's message, which ntfy makes the body) is
// taken as sent.
func ntfyBody(q, h params, body []byte) (*string, *apierr.Error) {
	if s, err := q.text("message"); s != nil || err != nil {
		return unescapeNewlines(s), err
	}
	if s, err := q.text("body"); s != nil || err != nil {
		return s, err
	}
	if s, err := h.text("message"); s != nil || err != nil {
		return unescapeNewlines(s), err
	}
	if !utf8.Valid(body) {
		return nil, &apierr.Error{Code: apierr.InvalidRequestBody, Detail: "the body must be UTF-8 text: file attachments are not supported"}
	}
	if t := strings.TrimSpace(string(body)); t != "" {
		return &t, nil
	}
	return nil, nil
}

func unescapeNewlines(s *string) *string {
	if s == nil {
		return nil
	}
	return new(strings.ReplaceAll(*s, `\n`, "\n"))
}

// ntfyPriority maps ntfy's priority to a severity, one step for one step:
// 1 min and 2 low → low, 3 default → normal, 4 high → high, 5 max and
// urgent → critical. (PushGo maps 1-2 to "info", 3 to "warning" and 4-5
// to "critical"; its severity parser knows neither info nor warning and
// makes them normal, so there 1-3 are normal and 4 is already critical.)
func ntfyPriority(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "min", "2", "low":
		return ops.SeverityLow, true
	case "3", "default":
		return ops.SeverityNormal, true
	case "4", "high":
		return ops.SeverityHigh, true
	case "5", "max", "urgent":
		return ops.SeverityCritical, true
	}
	return "", false
}

// spellings expands each refused feature's reason to all its spellings.
func spellings(reasons map[string]string, names map[string][]string) map[string]string {
	out := map[string]string{}
	for feature, list := range names {
		for _, n := range list {
			out[n] = reasons[feature]
		}
	}
	return out
}

// ntfyViewURL is the URL of the first "view" action of ntfy's simple
// action format, or of its JSON form in a header; "" when there is none
// or the text does not parse. The simple format is ntfy's grammar
// (server/actions.go): actions separated by ';', their sections by ',',
// a section "key=value" or positional (action, label, then url), a value
// quoted with " or ' (a \" inside) to hold a ',' or ';', spaces around
// trimmed: "view, Open, https://…", "action=view, label=Open,
// url=https://…" and `view, "Open, now", https://…` name the same link.
func ntfyViewURL(actions string) string {
	actions = strings.TrimSpace(actions)
	if strings.HasPrefix(actions, "[") {
		return ntfyJSONViewURL([]byte(`{"actions":` + actions + `}`))
	}
	p := ntfyActionParser{in: actions}
	for p.pos < len(p.in) {
		action, url, ok := p.action()
		if !ok {
			return ""
		}
		if strings.EqualFold(action, "view") && ops.MessageURLValid(url) {
			return url
		}
	}
	return ""
}

// ntfyActionKey is a section's "key=" (ntfy's actionsKeyRegex).
var ntfyActionKey = regexp.MustCompile(`^([-.\w]+)\s*=\s*`)

// ntfyActionParser reads ntfy's simple action format (ntfyViewURL).
type ntfyActionParser struct {
	in  string
	pos int
}

// action reads one action and returns its action and url members.
func (p *ntfyActionParser) action() (action, url string, ok bool) {
	for section := 0; ; section++ {
		p.spaces()
		key := ""
		if m := ntfyActionKey.FindStringSubmatch(p.in[p.pos:]); m != nil {
			key = m[1]
			p.pos += len(m[0])
		}
		value, last, ok := p.value()
		if !ok {
			return "", "", false
		}
		switch {
		case key == "" && section == 0:
			key = "action"
		case key == "" && section == 2 && (strings.EqualFold(action, "view") || strings.EqualFold(action, "http")):
			key = "url"
		}
		switch strings.ToLower(key) {
		case "action":
			action = value
		case "url":
			url = value
		}
		if last {
			return action, url, true
		}
	}
}

// value reads a section's value and the separator after it (last: the
// action's end, ';' or the text's).
func (p *ntfyActionParser) value() (value string, last, ok bool) {
	if p.pos < len(p.in) && (p.in[p.pos] == '"' || p.in[p.pos] == '\'') {
		q := p.in[p.pos]
		p.pos++
		start := p.pos
		for ; p.pos < len(p.in) && (p.in[p.pos] != q || p.in[p.pos-1] == '\\'); p.pos++ {
		}
		if p.pos >= len(p.in) {
			return "", false, false // no closing quote
		}
		value = strings.ReplaceAll(p.in[start:p.pos], "\\"+string(q), string(q))
		p.pos++
		p.spaces()
		if p.pos < len(p.in) && p.in[p.pos] != ';' && p.in[p.pos] != ',' {
			return "", false, false // text after the closing quote
		}
	} else {
		start := p.pos
		for p.pos < len(p.in) && p.in[p.pos] != ';' && p.in[p.pos] != ',' {
			p.pos++
		}
		value = strings.TrimSpace(p.in[start:p.pos])
	}
	last = p.pos >= len(p.in) || p.in[p.pos] == ';'
	if p.pos < len(p.in) {
		p.pos++
	}
	return value, last, true
}

func (p *ntfyActionParser) spaces() {
	for p.pos < len(p.in) && strings.IndexByte(" \t\r\n", p.in[p.pos]) >= 0 {
		p.pos++
	}
}

// ntfyJSONViewURL is the URL of the first "view" action of a JSON
// publish's actions ([{"action": "view", "label", "url"}]); "" when there
// is none or the body does not say.
func ntfyJSONViewURL(body []byte) string {
	var b struct {
		Actions []struct {
			Action string `json:"action"`
			URL    string `json:"url"`
		} `json:"actions"`
	}
	if json.Unmarshal(body, &b, json.RejectUnknownMembers(false), json.MatchCaseInsensitiveNames(true)) != nil {
		return ""
	}
	for _, a := range b.Actions {
		if strings.EqualFold(a.Action, "view") && ops.MessageURLValid(a.URL) { // as a click link: not a script's
			return a.URL
		}
	}
	return ""
}

// ntfyFilename refuses a file name without attach (ntfy then takes the
// body as the file), with code.
func ntfyFilename(p params, code apierr.Code) *apierr.Error {
	if fn, ok := p["filename"]; ok && !p.has("attach") {
		return apierr.Fieldf(code, safeName(fn.name), "%s", ntfyFilenameRefused)
	}
	return nil
}
