package ops

import (
	"net/url"

	"github.com/pushgo/gateway/schemas/apierr"
)

// ChannelCreate is a validated /channel/create request.
type ChannelCreate struct {
	Name     string
	Password string
}

// ChannelRename is a validated /channel/rename request.
type ChannelRename struct {
	ChannelID string
	Password  string
	Name      string
}

// ValidateEvent validates an /event/create|update|close request (op is
// EventCreate, EventUpdate or EventClose) at time now (ms): a close
// without event_time happened at now.
func ValidateEvent(op Name, r *EventRequest, now int64, opts ...Option) (*Validated, *apierr.Error) {
	return validateEventAs(op, r, true, now, newRules(opts))
}

// ValidateIntegrationEvent validates an event operation an integration
// adapter built from a monitoring tool's report: the same rules as
// ValidateEvent, without a password (the integration token authorized the
// channel). The adapter may then set the payload's Deadline and Refresh.
func ValidateIntegrationEvent(op Name, r *EventRequest, opts ...Option) (*Validated, *apierr.Error) {
	return validateEventAs(op, r, false, 0, newRules(opts))
}

// ValidateThing validates a /thing/create|update|archive|delete request.
func ValidateThing(op Name, r *ThingRequest, now int64, opts ...Option) (*Validated, *apierr.Error) {
	return validateThing(op, r, newRules(opts))
}

// ValidateMessage validates a /message request.
func ValidateMessage(r *MessageRequest, now int64, opts ...Option) (*Validated, *apierr.Error) {
	return validateMessage(r, now, newRules(opts))
}

// MessageRequestFromQuery builds a MessageRequest from GET /message query
// parameters: list fields comma-separated, metadata as a JSON string.
// Unknown or repeated parameters are rejected like unknown or duplicate
// JSON members.
func MessageRequestFromQuery(q url.Values) (*MessageRequest, *apierr.Error) {
	return messageRequestFromQuery(q)
}

// ValidateChannelCreate validates a /channel/create request.
func ValidateChannelCreate(r *ChannelCreateRequest) (*ChannelCreate, *apierr.Error) {
	return validateChannelCreate(r)
}

// ValidateChannelRename validates a /channel/rename request.
func ValidateChannelRename(r *ChannelRenameRequest) (*ChannelRename, *apierr.Error) {
	return validateChannelRename(r)
}

// ValidateChannelID returns the canonical form of a channel id given in a
// query string or body (required).
func ValidateChannelID(s *string) (string, *apierr.Error) { return validateChannelID(s) }

// ValidatePassword returns the trimmed password (required, 8-128 bytes).
func ValidatePassword(s *string) (string, *apierr.Error) { return validatePassword(s) }
