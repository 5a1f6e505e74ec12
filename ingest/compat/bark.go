package compat

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pushgo/gateway/ingest/httpapi"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// Bark (PushGo's compat/bark.rs, routes in src/api/handlers/mod.rs; the
// routes and parameter rules of Bark's own server, Finb/bark-server
// route_push.go):
//
//	GET|POST /bark/{key}
//	GET|POST /bark/{key}/{body}
//	GET|POST /bark/{key}/{title}/{body}
//	GET|POST /bark/{key}/{title}/{subtitle}/{body}
//	POST     /bark/push                              {"device_key": key, ...}
//
// The key is the compat key "<channel_id>:<password>". Parameters come from
// the path (first), the body (JSON, form or multipart) and the query, with
// names matched case-insensitively, as Bark's server does.

// Route patterns of Bark.
const (
	RouteBarkKey       = "/bark/:key"
	RouteBarkBody      = "/bark/:key/:body"
	RouteBarkTitleBody = "/bark/:key/:title/:body"
	RouteBarkSubtitle  = "/bark/:key/:title/:subtitle/:body"
	RouteBarkPush      = "/bark/push"
)

// The key's path parameter, and its canonical name (Bark's device_key).
const (
	barkPathKey = "key"
	barkKey     = "device_key"
)

func (r *Routes) routeBark(e *echo.Echo) {
	methods := []string{http.MethodGet, http.MethodPost}
	for _, route := range []string{RouteBarkKey, RouteBarkBody, RouteBarkTitleBody, RouteBarkSubtitle} {
		e.Match(methods, route, r.barkV1)
	}
	e.POST(RouteBarkPush, r.barkPush)
}

// barkError is bark-server's failure (router.go, failed()): code is the
// HTTP status.
func barkError(now time.Time) func(*apierr.Error) any {
	return func(e *apierr.Error) any {
		return struct {
			Code      int    `json:"code"`
			Message   string `json:"message"`
			Timestamp int64  `json:"timestamp"`
		}{e.Status(), e.Detail, now.Unix()}
	}
}

// barkTrailingSlash makes u, a Bark path, route as the path without its
// trailing slash: Bark's server routes without strict routing (Fiber's
// default), and a script that builds its URL from a base ending in a slash
// sends one; it was 404.
func barkTrailingSlash(u *url.URL) {
	if len(u.Path) > len("/bark/") && strings.HasSuffix(u.Path, "/") {
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	}
}

// barkVocabulary is Bark's parameters (lower-cased) and PushGo's own.
var barkVocabulary = vocabulary{
	foldCase: true,
	names: map[string]string{
		"device_key": "device_key", "title": "title", "subtitle": "subtitle", "body": "body", "markdown": "markdown",
		"level": "level", "sound": "sound", "icon": "icon", "group": "group", "url": "url", "image": "image",
		"op_id": "op_id", "images": "images", "tags": "tags", "metadata": "metadata",
		// Accepted, no effect here: Bark app's own display and
		// clipboard switches, its badge, its notification id (which
		// replaces an earlier notification there) and the old category.
		"badge": "", "autocopy": "", "automaticallycopy": "", "copy": "", "isarchive": "", "action": "",
		"volume": "", "call": "", "id": "", "category": "",
	},
	refused: map[string]string{
		"delete": "deleting a delivered notification is not supported",
		"iv":     "Bark's encrypted pushes cannot be read by the PushGo apps",
		// Bark's documented encrypted push is ciphertext alone (its IV set
		// in the Bark app): taken as PushGo's, it was delivered titled
		// "Notification" and nobody could read it. PushGo's Bark routes
		// take no ciphertext either; POST /message does.
		"ciphertext":  "Bark's encrypted pushes cannot be read by the PushGo apps; send PushGo's ciphertext to POST /message",
		"device_keys": "batch pushes are not supported: send one request per key",
		"thing_id":    "thing_id is not accepted on the compat routes (as PushGo); use POST /message",
	},
}

// barkV1 serves /bark/{key}[/{title}[/{subtitle}]]/{body}: the path wins
// over the rest, and of the query and the body (barkOrder) a JSON body
// loses to the query, a form or multipart body wins over it.
func (r *Routes) barkV1(c *echo.Context) error {
	req := &ops.MessageRequest{}
	path, aerr := barkPath(c)
	var q, b params
	if aerr == nil {
		q, aerr = fromQuery(barkVocabulary, c)
	}
	if aerr == nil && c.Request().Method == http.MethodPost {
		b, aerr = fromBody(barkVocabulary, c)
	}
	p := path.or(barkOrder(c, q, b))
	if aerr == nil {
		aerr = setKey(req, p[barkKey].text, barkPathKey)
	}
	if aerr == nil {
		aerr = barkMessage(req, p, r.d.MetadataValueMax)
	}
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	return r.send(c, req, barkAnswer)
}

// barkPush serves POST /bark/push (Bark's API v2): the parameters in the
// body and the query (the query wins, as Bark's server reads them), the
// key in device_key.
func (r *Routes) barkPush(c *echo.Context) error {
	req := &ops.MessageRequest{}
	q, aerr := fromQuery(barkVocabulary, c)
	var b params
	if aerr == nil {
		b, aerr = fromBody(barkVocabulary, c)
	}
	p := barkOrder(c, q, b)
	var key *string
	if aerr == nil {
		key, aerr = p.text(barkKey)
	}
	if aerr == nil && key == nil {
		aerr = apierr.Fieldf(apierr.ChannelIDRequired, barkKey, "required: <channel_id>:<password>")
	}
	if aerr == nil {
		aerr = setKey(req, *key, barkKey)
	}
	if aerr == nil {
		aerr = barkMessage(req, p, r.d.MetadataValueMax)
	}
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	return r.send(c, req, barkAnswer)
}

// barkOrder merges the query q and the body b in Bark's order
// (route_push.go, routeDoPush): a JSON body is read first and the query
// over it "(medium priority)" (routeDoPushV2), a form or multipart body
// over the query; the path wins over both (the caller's).
func barkOrder(c *echo.Context, q, b params) params {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		return q.or(b)
	}
	return b.or(q)
}

// barkPath reads the path parameters, decoded as Bark's server decodes
// them (url.QueryUnescape: '+' is a space).
func barkPath(c *echo.Context) (params, *apierr.Error) {
	p := params{}
	for _, name := range []string{barkPathKey, "title", "subtitle", "body"} {
		if c.Param(name) == "" {
			continue
		}
		v, aerr := pathParam(c, name, true)
		if aerr != nil {
			return nil, aerr
		}
		canon := name
		if name == barkPathKey {
			canon = barkKey
		}
		p[canon] = value{name: name, text: v}
	}
	return p, nil
}

// barkMessage converts Bark parameters into req, as PushGo's
// CompatBarkV1Query and CompatBarkV2Payload: the title from title (or
// "Notification"); the body from markdown or body, after the subtitle's
// own line; the severity from level (barkLevel); image as the first image;
// sound, icon and group kept in the metadata as compat.bark.sound,
// compat.bark.icon and compat.bark.group; the url as the message's (an
// app's scheme, such as weixin://, included: the apps open what they can).
func barkMessage(req *ops.MessageRequest, p params, hintMax int) *apierr.Error {
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
	if req.Body, err = p.first("markdown", "body"); err != nil {
		return err
	}
	subtitle, err := p.text("subtitle")
	switch {
	case err != nil:
		return err
	case subtitle != nil && req.Body != nil:
		req.Body = new(strings.TrimSpace(*subtitle) + "\n" + *req.Body)
	case subtitle != nil:
		req.Body = subtitle
	}
	level, err := p.text("level")
	if err != nil {
		return err
	}
	if level != nil {
		sev, ok := barkLevel(*level)
		if !ok {
			return apierr.Fieldf(apierr.InvalidSeverity, safeName(p["level"].name), "Bark level must be active, timeSensitive, passive or critical")
		}
		req.Severity = &sev
	}
	image, err := p.text("image")
	if err != nil {
		return err
	}
	if image != nil {
		req.Images = append([]string{strings.TrimSpace(*image)}, req.Images...)
	}
	hints := make([]hint, 0, 4)
	for _, name := range []string{"sound", "icon", "group"} {
		v, err := p.text(name)
		if err != nil {
			return err
		}
		hints = append(hints, hint{"compat.bark." + name, v})
	}
	req.Metadata, err = withHints(req.Metadata, hintMax, hints...)
	return err
}

// barkLevel maps Bark's interruption level to the severity that is pushed
// with the same APNs interruption level: active → normal, timeSensitive →
// high, passive → low, critical → critical (PushGo's info and warning
// spellings are accepted as passive and timeSensitive). PushGo maps active
// to critical and the others to severities its parser does not know, which
// become normal.
func barkLevel(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "active":
		return ops.SeverityNormal, true
	case "timesensitive", "time-sensitive", "warning":
		return ops.SeverityHigh, true
	case "passive", "info":
		return ops.SeverityLow, true
	case "critical":
		return ops.SeverityCritical, true
	}
	return "", false
}
