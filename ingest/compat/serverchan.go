package compat

import (
	"net/http"
	"strings"

	"github.com/pushgo/gateway/ingest/httpapi"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// ServerChan (PushGo's compat/serverchan.rs, routes in
// src/api/handlers/mod.rs):
//
//	GET|POST /serverchan/{sendkey}
//	GET|POST /serverchan/{sendkey}.send   ServerChan's own URL form
//
// The send key is the compat key "<channel_id>:<password>"; a trailing
// ".send" is ServerChan's URL suffix, not part of the password (a password
// that ends in ".send" is written with the suffix: "...pw.send.send").
// Parameters come from the query (GET) or the body (POST: form, multipart or
// JSON, as ServerChan's SDKs send them; the query too, the body winning).

// RouteServerChan is ServerChan's route pattern; RouteServerChan3 is
// ServerChan³'s (its SDKs send a "sctp…" key to
// https://<uid>.push.ft07.com/send/<key>.send, easychen/serverchan-sdk),
// the same handler.
const (
	RouteServerChan  = "/serverchan/:sendkey"
	RouteServerChan3 = "/serverchan/send/:sendkey"
)

func (r *Routes) routeServerChan(e *echo.Echo) {
	e.Match([]string{http.MethodGet, http.MethodPost}, RouteServerChan, r.serverChan)
	e.Match([]string{http.MethodGet, http.MethodPost}, RouteServerChan3, r.serverChan)
}

// serverChanVocabulary is ServerChan's parameters and PushGo's own.
var serverChanVocabulary = vocabulary{
	names: map[string]string{
		"title": "title", "text": "text", "desp": "desp", "body": "body", "url": "url", "tags": "tags",
		"op_id": "op_id", "ciphertext": "ciphertext", "metadata": "metadata",
		// Accepted, no effect here: ServerChan's card summary, its
		// hide-the-IP switch, its delivery channels and their recipients.
		"short": "", "noip": "", "channel": "", "openid": "",
	},
	refused: map[string]string{
		"thing_id": "thing_id is not accepted on the compat routes (as PushGo); use POST /message",
	},
}

// serverChan serves /serverchan/{sendkey}.
func (r *Routes) serverChan(c *echo.Context) error {
	req := &ops.MessageRequest{}
	key, aerr := pathParam(c, "sendkey", false)
	if aerr == nil {
		aerr = setKey(req, strings.TrimSuffix(key, ".send"), "sendkey")
	}
	var q, b params
	if aerr == nil {
		q, aerr = fromQuery(serverChanVocabulary, c)
	}
	if aerr == nil && c.Request().Method == http.MethodPost {
		b, aerr = fromBody(serverChanVocabulary, c)
	}
	if aerr == nil {
		aerr = serverChanMessage(req, b.or(q))
	}
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	return r.send(c, req, serverChanAnswer)
}

// serverChanMessage converts ServerChan parameters into req, as PushGo's
// CompatServerChanPayload::into_intent: the title from title, or text (its
// old name), or "Notification"; the Markdown body from desp, or PushGo's
// body; the link from url; tags as ServerChan³ writes them ("a|b"), or
// comma-separated.
func serverChanMessage(req *ops.MessageRequest, p params) *apierr.Error {
	if err := setPushGoFields(req, p, "|,"); err != nil {
		return err
	}
	var err *apierr.Error
	if req.Title, err = p.first("title", "text"); err != nil {
		return err
	}
	if req.Title == nil {
		req.Title = new(defaultTitle)
	}
	if req.Body, err = p.first("desp", "body"); err != nil {
		return err
	}
	return nil
}
