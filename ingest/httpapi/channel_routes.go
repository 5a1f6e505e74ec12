package httpapi

import (
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

type channelCreated struct {
	ChannelID   string `json:"channel_id"`
	ChannelName string `json:"channel_name"`
	Created     bool   `json:"created"`
}

type channelExists struct {
	ChannelID   string `json:"channel_id"`
	Exists      bool   `json:"exists"`
	ChannelName string `json:"channel_name,omitempty"`
}

type channelRenamed struct {
	ChannelID   string `json:"channel_id"`
	ChannelName string `json:"channel_name"`
}

func (s *Server) channelCreate(c *echo.Context) error {
	var req ops.ChannelCreateRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := ops.ValidateChannelCreate(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	if aerr := s.lim.ChannelCreate(c.Request().Context()); aerr != nil {
		return writeErr(c, aerr)
	}
	ch, err := s.channels.Create(c.Request().Context(), v.Name, v.Password, s.opts.Now())
	if err != nil {
		s.log.Warn("http: channel create failed", "err", err)
		return writeErr(c, s.storeOr(err, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "channel could not be stored; retry", RetryAfter: 1}))
	}
	return writeOK(c, channelCreated{ChannelID: ch.ID, ChannelName: ch.Name, Created: true})
}

func (s *Server) channelExists(c *echo.Context) error {
	q := c.QueryParams()
	for k, vs := range q {
		if k != "channel_id" || len(vs) != 1 {
			return writeErr(c, apierr.Fieldf(apierr.InvalidQuery, k, "unknown or repeated query parameter"))
		}
	}
	raw, given := q["channel_id"]
	var idp *string
	if given {
		idp = &raw[0]
	}
	id, aerr := ops.ValidateChannelID(idp)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	ch, ok, err := s.channels.Lookup(c.Request().Context(), id)
	if err != nil {
		return writeErr(c, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "registry unavailable; retry", RetryAfter: 1})
	}
	return writeOK(c, channelExists{ChannelID: id, Exists: ok, ChannelName: ch.Name})
}

func (s *Server) channelRename(c *echo.Context) error {
	var req ops.ChannelRenameRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := ops.ValidateChannelRename(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	ctx := c.Request().Context()
	ch, aerr := s.channels.Authorize(ctx, v.ChannelID, v.Password)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	ch, err := s.channels.Rename(ctx, ch, v.Name)
	if err != nil {
		s.log.Warn("http: channel rename failed", "channel_id", v.ChannelID, "err", err)
		return writeErr(c, s.storeOr(err, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "channel could not be renamed; retry", RetryAfter: 1}))
	}
	return writeOK(c, channelRenamed{ChannelID: ch.ID, ChannelName: ch.Name})
}
