// Package compat serves PushGo's sender compatibility routes (gateway
// src/api/handlers/message/compat/ and their registration in
// src/api/handlers/mod.rs): requests in the shape of ntfy, Bark and
// ServerChan, each turned into one Message through the same validation
// (ops.ValidateMessage), channel password check and idempotent append
// (op_id) as POST /message. A script that talks to one of these tools works
// by changing its base URL to <gateway>/ntfy, <gateway>/bark or
// <gateway>/serverchan.
//
// The channel and its password travel where the tool puts its secret (the
// ntfy topic, the Bark device key, the ServerChan send key), as PushGo's
// compat key "<channel_id>:<password>" (key.go).
//
// One file per tool (ntfy.go, bark.go, serverchan.go); params.go reads a
// request's parameters from its query, headers and body, convert.go builds
// the message fields they share. Handlers are thin: read the parameters,
// convert them to an ops.MessageRequest, then send (validate, authorize,
// append, answer). Every rejection happens before the append, so a rejected
// request appends nothing. Answers are PushGo's envelope, as PushGo answers
// on these routes: on success the data of POST /message.
package compat

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/pushgo/gateway/ingest/httpapi"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// Channels checks channel passwords (a *registry.Registry).
type Channels interface {
	Authorize(ctx context.Context, id, password string) (registry.Channel, *apierr.Error)
}

// Appender appends validated operations (an *oplog.Writer).
type Appender interface {
	Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error)
}

// Deps are what the compat routes need. Channels and Appender are required.
type Deps struct {
	Channels Channels
	Appender Appender
	// Token is PUSHGO_TOKEN ("" for a public gateway). The bearer
	// middleware checks it on the Bark and ServerChan routes, as PushGo
	// does; the ntfy routes check it themselves (OwnAuth), because ntfy
	// clients may send it in the auth query parameter instead of the
	// Authorization header.
	Token string
	// Validation adjusts the message rules to the configuration, as for
	// POST /message (ops.WithMetadataValueMax).
	Validation []ops.Option
	// MetadataValueMax is the most bytes of one metadata value, the
	// limit Validation sets (0: ops.DefaultMetadataValueMax): a display
	// hint longer than a value may be is left out (withHints).
	MetadataValueMax int
	// Now is the clock of defaults (occurred_at, the ttl bound). Default
	// time.Now.
	Now func() time.Time
	// Limits throttle the failed checks of Token (AuthCheck); nil applies
	// none.
	Limits *limits.Limits
}

// Routes serves the compat routes.
type Routes struct {
	d    Deps
	auth bearer
}

// Register adds every compat route to e (ntfy.go, bark.go, serverchan.go
// list them).
func Register(e *echo.Echo, d Deps) *Routes {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.MetadataValueMax <= 0 {
		d.MetadataValueMax = ops.DefaultMetadataValueMax
	}
	r := &Routes{d: d, auth: newBearer(d.Token, d.Limits)}
	r.routeNtfy(e)
	r.routeBark(e)
	r.routeServerChan(e)
	e.Pre(r.beforeRouting)
	return r
}

// beforeRouting gives a request to a tool's route, before anything can
// refuse it (the token, the body's limit, routing), the members its
// failure answers carry for that tool's clients (httpapi.ErrorMembersKey),
// and a Bark path its route (barkTrailingSlash). One middleware: every
// request of the gateway passes it.
func (r *Routes) beforeRouting(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		switch path := c.Request().URL.Path; {
		case strings.HasPrefix(path, "/bark/"):
			barkTrailingSlash(c.Request().URL)
			c.Set(httpapi.ErrorMembersKey, barkError(r.d.Now()))
		case strings.HasPrefix(path, "/serverchan/"):
			c.Set(httpapi.ErrorMembersKey, serverChanError)
		case path == RouteNtfyJSON || strings.HasPrefix(path, RouteNtfyJSONDir):
			c.Set(httpapi.ErrorMembersKey, ntfyError)
			if ntfyCORS(c) {
				return c.NoContent(http.StatusOK)
			}
		}
		return next(c)
	}
}

// ntfyCORS answers the ntfy routes as ntfy answers a browser: every answer,
// refusals too, may be read by a page of any origin
// (Access-Control-Allow-Origin: *, ntfy's default), and a preflight
// (OPTIONS) is allowed any method and header without a token, as ntfy does
// (server.go handleOptions), so a page following ntfy's JavaScript example
// publishes with its Title or Authorization header. done reports that the
// request was a preflight, to be answered 200 with no body. The topic is
// the channel's secret and the token travels in a header a page must set
// itself: the wildcard grants a page nothing it does not already hold.
func ntfyCORS(c *echo.Context) (done bool) {
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if c.Request().Method != http.MethodOptions {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, PUT, POST, PATCH, DELETE")
	// The Fetch standard's wildcard covers every header but Authorization,
	// which must be named (ntfy's "*" alone lets no page send a token).
	h.Set("Access-Control-Allow-Headers", "Authorization, *")
	return true
}

// OwnAuth reports whether route (an echo route pattern) checks PUSHGO_TOKEN
// itself, so the gateway's bearer middleware must let it through: the ntfy
// routes (ntfy's auth query parameter).
func OwnAuth(route string) bool { return ntfyRoutes[route] }

// messageData is the 200 data: POST /message's.
type messageData struct {
	ChannelID string `json:"channel_id"`
	OpID      string `json:"op_id"`
	MessageID string `json:"message_id"`
	Accepted  bool   `json:"accepted"`
}

// send validates req as POST /message does, checks the channel password,
// appends and answers. A retry with the same op_id and the same fields is
// answered as the first time and appends nothing; the same op_id with other
// fields is 409 op_id_conflict.
func (r *Routes) send(c *echo.Context, req *ops.MessageRequest, tool toolAnswer) error {
	v, aerr := ops.ValidateMessage(req, r.d.Now().UnixMilli(), r.d.Validation...)
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	ctx := c.Request().Context()
	if _, aerr := r.d.Channels.Authorize(ctx, v.ChannelID, v.Password); aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	res, aerr := r.d.Appender.Append(ctx, v)
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	d := messageData{ChannelID: v.ChannelID, OpID: res.OpID, MessageID: res.EntityID, Accepted: true}
	return httpapi.WriteOKWith(c, d, tool(d, v, r.d.Now()))
}

// toolAnswer is what a tool's own clients read of its answer, as members
// beside PushGo's envelope (which stays whole for scripts that check
// success): shoutrrr, Watchtower's notifier, calls a Bark push without
// "code": 200 failed, serverchan-sdk's callers test "code" == 0, and
// aiontfy reads ntfy's message (id, time, event, topic) from the answer.
type toolAnswer func(d messageData, v *ops.Validated, now time.Time) any

// barkAnswer is bark-server's success (router.go, success()).
func barkAnswer(_ messageData, _ *ops.Validated, now time.Time) any {
	return struct {
		Code      int    `json:"code"`
		Message   string `json:"message"`
		Timestamp int64  `json:"timestamp"`
	}{200, "success", now.Unix()}
}

// serverChanError is ServerChan's failure: a code other than 0 (the HTTP
// status) and its message; its SDK reads the code whatever the status.
func serverChanError(e *apierr.Error) any {
	return struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{e.Status(), e.Detail}
}

// ntfyError is ntfy's error (server/errors.go errHTTP): its code (the
// HTTP status and a serial, here 00) and HTTP status beside the
// envelope's error text.
func ntfyError(e *apierr.Error) any {
	return struct {
		Code int `json:"code"`
		HTTP int `json:"http"`
	}{e.Status() * 100, e.Status()}
}

// serverChanAnswer is ServerChan's success: code 0 ("0 为正确", its SDK's
// README). Its data's pushid and readkey have no counterpart here (the
// message id is PushGo's data's).
func serverChanAnswer(_ messageData, _ *ops.Validated, _ time.Time) any {
	return struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{0, ""}
}

// ntfyAnswer is the members of ntfy's published message (server.go
// handlePublish answers the message): its id, time, event, topic (the
// channel id: the key's password stays out of answers) and text.
func ntfyAnswer(d messageData, v *ops.Validated, now time.Time) any {
	var p ops.MessagePayload
	if mp, ok := v.Payload.(*ops.MessagePayload); ok {
		p = *mp
	}
	return struct {
		ID      string `json:"id"`
		Time    int64  `json:"time"`
		Event   string `json:"event"`
		Topic   string `json:"topic"`
		Title   string `json:"title,omitzero"`
		Message string `json:"message"`
	}{d.MessageID, now.Unix(), "message", d.ChannelID, p.Title, p.Body}
}
