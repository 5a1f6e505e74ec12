// Package apierr is the one catalog of the gateway's stable error codes.
//
// Every rejection the gateway makes is an *Error whose Code comes from this
// catalog. Codes are part of the public contract: they are never renamed or
// reused with another meaning. The README's error table lists every entry
// of Catalog (TestReadmeListsEveryCode in the root module checks it).
package apierr

import (
	"fmt"
	"net/http"
	"sort"
)

// Code is a stable snake_case machine code returned as error_code.
type Code string

// Entry describes one code: the HTTP status it is answered with and the
// message used when the rejection has no more specific detail.
type Entry struct {
	Code    Code
	Status  int
	Message string
}

// The catalog. Grouped by status; within a group, alphabetical.
const (
	// 400: transport and decoding.
	MissingJSONContentType Code = "missing_json_content_type"
	InvalidJSONSyntax      Code = "invalid_json_syntax"
	InvalidJSONData        Code = "invalid_json_data"
	InvalidRequestBody     Code = "invalid_request_body"
	InvalidQuery           Code = "invalid_query"

	// 400: read routes.
	InvalidState  Code = "invalid_state"
	InvalidLimit  Code = "invalid_limit"
	InvalidCursor Code = "invalid_cursor"
	InvalidKinds  Code = "invalid_kinds"

	// 400: integration tokens and entity selectors.
	TokenNameRequired     Code = "token_name_required"
	InvalidTokenName      Code = "invalid_token_name"
	InvalidScopes         Code = "invalid_scopes"
	TokenIDRequired       Code = "token_id_required"
	InvalidTokenID        Code = "invalid_token_id"
	InvalidEntitySelector Code = "invalid_entity_selector"

	// 400: identifiers and credentials.
	ChannelIDRequired        Code = "channel_id_required"
	InvalidChannelID         Code = "invalid_channel_id"
	PasswordRequired         Code = "password_required"
	InvalidPassword          Code = "invalid_password"
	ChannelNameRequired      Code = "channel_name_required"
	InvalidChannelName       Code = "invalid_channel_name"
	InvalidOpID              Code = "invalid_op_id"
	EventIDRequired          Code = "event_id_required"
	InvalidEventID           Code = "invalid_event_id"
	EventIDForbiddenOnCreate Code = "event_id_forbidden_on_create"
	ThingIDRequired          Code = "thing_id_required"
	InvalidThingID           Code = "invalid_thing_id"
	ThingIDForbiddenOnCreate Code = "thing_id_forbidden_on_create"
	InvalidTimestamp         Code = "invalid_timestamp"
	CiphertextTooLong        Code = "ciphertext_too_long"
	InvalidCiphertext        Code = "invalid_ciphertext"

	// 400: devices and subscriptions.
	ChannelBindingInvalid       Code = "channel_binding_invalid"
	ChannelTypePlatformMismatch Code = "channel_type_platform_mismatch"
	ChannelTypeRequired         Code = "channel_type_required"
	DeviceKeyRequired           Code = "device_key_required"
	InvalidChannelType          Code = "invalid_channel_type"
	InvalidChannels             Code = "invalid_channels"
	InvalidDeviceKey            Code = "invalid_device_key"
	InvalidPlatform             Code = "invalid_platform"
	InvalidProviderToken        Code = "invalid_provider_token"
	PlatformRequired            Code = "platform_required"
	ProviderTokenRequired       Code = "provider_token_required"

	// 400: event fields.
	TitleRequired                        Code = "title_required"
	TitleTooLong                         Code = "title_too_long"
	StatusRequired                       Code = "status_required"
	StatusTooLong                        Code = "status_too_long"
	MessageRequired                      Code = "message_required"
	MessageTooLong                       Code = "message_too_long"
	SeverityRequired                     Code = "severity_required"
	InvalidSeverity                      Code = "invalid_severity"
	EventTimeRequired                    Code = "event_time_required"
	EndedAtForbiddenOnCreate             Code = "ended_at_forbidden_on_create"
	StartedAtForbiddenOnClose            Code = "started_at_forbidden_on_close"
	EventTemporalFieldsForbiddenOnUpdate Code = "event_temporal_fields_forbidden_on_update"

	// 400: thing fields.
	ObservedAtRequired         Code = "observed_at_required"
	CreatedAtForbiddenOnUpdate Code = "created_at_forbidden_on_update"
	DeletedAtForbiddenOnUpdate Code = "deleted_at_forbidden_on_update"
	PrimaryImageInvalid        Code = "primary_image_invalid"
	ExternalIDsKeyInvalid      Code = "external_ids_key_invalid"
	ExternalIDsValueInvalid    Code = "external_ids_value_invalid"
	LocationIncomplete         Code = "location_incomplete"
	LocationTypeInvalid        Code = "location_type_invalid"
	LocationValueInvalid       Code = "location_value_invalid"

	// 400: message fields.
	OccurredAtRequired Code = "occurred_at_required"
	URLInvalid         Code = "url_invalid"
	TTLExpired         Code = "ttl_expired"

	// 400: shared value rules.
	TagsFormatInvalid                      Code = "tags_format_invalid"
	ImagesFormatInvalid                    Code = "images_format_invalid"
	AttrsInvalid                           Code = "attrs_invalid"
	ExtensionObjectArraysUnsupported       Code = "extension_object_arrays_unsupported"
	ExtensionObjectNestedObjectUnsupported Code = "extension_object_nested_object_unsupported"
	MetadataInvalid                        Code = "metadata_invalid"
	MetadataKeyInvalid                     Code = "metadata_key_invalid"
	MetadataKeyTooLong                     Code = "metadata_key_too_long"
	MetadataValueScalarRequired            Code = "metadata_value_scalar_required"
	MetadataValueInvalid                   Code = "metadata_value_invalid"
	MetadataValueTooLong                   Code = "metadata_value_too_long"

	// 401, 403, 404, 405.
	AuthenticationFailed Code = "authentication_failed"
	InvalidAPIToken      Code = "invalid_api_token"
	ScopeMissing         Code = "scope_missing"
	TokenNotFound        Code = "token_not_found"
	PasswordMismatch     Code = "password_mismatch"
	ChannelNotFound      Code = "channel_not_found"
	DeviceNotFound       Code = "device_not_found"
	EventNotFound        Code = "event_not_found"
	ThingNotFound        Code = "thing_not_found"
	OpNotFound           Code = "op_not_found"
	RouteNotFound        Code = "route_not_found"
	MethodNotAllowed     Code = "method_not_allowed"

	// 409.
	EventClosed  Code = "event_closed"
	ThingDeleted Code = "thing_deleted"
	OpIDConflict Code = "op_id_conflict"
	// SequenceMismatch is internal: an operation conditioned on the
	// entity's last sequence (the gateway's own timeout close) lost to a
	// later operation. Never answered to a client.
	SequenceMismatch Code = "sequence_mismatch"

	// 413, 429, 500, 503.
	PayloadTooLarge   Code = "payload_too_large"
	RateLimited       Code = "rate_limited"
	InternalError     Code = "internal_error"
	AppendUnavailable Code = "append_unavailable"
	BrokerUnavailable Code = "broker_unavailable"
	ProjectionLagging Code = "projection_lagging"
	ReadUnavailable   Code = "read_unavailable"
)

var catalog = map[Code]Entry{}

func def(c Code, status int, msg string) {
	if _, dup := catalog[c]; dup {
		panic("apierr: duplicate code " + string(c))
	}
	catalog[c] = Entry{Code: c, Status: status, Message: msg}
}

func init() {
	const bad = http.StatusBadRequest
	def(MissingJSONContentType, bad, "Content-Type must be application/json")
	def(InvalidJSONSyntax, bad, "request body is not valid JSON")
	def(InvalidJSONData, bad, "request body does not match the route's schema")
	def(InvalidRequestBody, bad, "request body is empty")
	def(InvalidQuery, bad, "query string is invalid")
	def(InvalidState, bad, "state must be one of the entity's states")
	def(InvalidLimit, bad, "limit is out of range")
	def(InvalidCursor, bad, "cursor is not one this gateway returned")
	def(InvalidKinds, bad, "kinds must be a list of event, thing, message")
	def(TokenNameRequired, bad, "name is required")
	def(InvalidTokenName, bad, "name must be 1-128 characters without control characters")
	def(InvalidScopes, bad, "scopes must be a non-empty list of known scopes (events.ingest, events.read)")
	def(TokenIDRequired, bad, "token_id is required")
	def(InvalidTokenID, bad, "token_id is not a token id this gateway issued")
	def(InvalidEntitySelector, bad, "entitySelector is invalid")

	def(ChannelIDRequired, bad, "channel_id is required")
	def(InvalidChannelID, bad, "channel_id must be a 26-character Crockford base32 id")
	def(PasswordRequired, bad, "password is required")
	def(InvalidPassword, bad, "password must be 8-128 bytes after trimming")
	def(ChannelNameRequired, bad, "channel_name is required")
	def(InvalidChannelName, bad, "channel_name must be 1-128 characters without control characters")
	def(InvalidOpID, bad, "op_id must be 1-128 characters of [A-Za-z0-9_:-]")
	def(EventIDRequired, bad, "event_id is required")
	def(InvalidEventID, bad, "event_id must be 1-64 characters of [A-Za-z0-9_:-]")
	def(EventIDForbiddenOnCreate, bad, "event_id must not be sent on create")
	def(ThingIDRequired, bad, "thing_id is required")
	def(InvalidThingID, bad, "thing_id must be 1-64 characters of [A-Za-z0-9_:-]")
	def(ThingIDForbiddenOnCreate, bad, "thing_id must not be sent on create")
	def(InvalidTimestamp, bad, "timestamp must be a non-negative integer of seconds or milliseconds")
	def(CiphertextTooLong, bad, "ciphertext must be at most 16 KiB")
	def(InvalidCiphertext, bad, "ciphertext must be a non-empty string")

	def(ChannelBindingInvalid, bad, "exactly one of channel_id and channel_name is required")
	def(ChannelTypePlatformMismatch, bad, "apns requires an Apple platform (ios, ipados, macos, watchos) and fcm requires android")
	def(ChannelTypeRequired, bad, "channel_type is required")
	def(DeviceKeyRequired, bad, "device_key is required")
	def(InvalidChannelType, bad, "channel_type must be apns or fcm")
	def(InvalidChannels, bad, "channels must be a list of at most 128 {channel_id, password} objects with distinct channel ids")
	def(InvalidDeviceKey, bad, "device_key must be 32 hexadecimal characters")
	def(InvalidPlatform, bad, "platform must be one of ios, ipados, macos, watchos, android")
	def(InvalidProviderToken, bad, "provider_token must be 64-200 hexadecimal characters for apns, 1-4096 visible ASCII characters for fcm")
	def(PlatformRequired, bad, "platform is required")
	def(ProviderTokenRequired, bad, "provider_token is required")

	def(TitleRequired, bad, "title is required")
	def(TitleTooLong, bad, "title must be at most 256 characters")
	def(StatusRequired, bad, "status is required")
	def(StatusTooLong, bad, "status must be at most 24 characters")
	def(MessageRequired, bad, "message is required")
	def(MessageTooLong, bad, "message must be at most 512 characters")
	def(SeverityRequired, bad, "severity is required")
	def(InvalidSeverity, bad, "severity must be one of critical, high, normal, low")
	def(EventTimeRequired, bad, "event_time is required")
	def(EndedAtForbiddenOnCreate, bad, "ended_at is only allowed on /event/close")
	def(StartedAtForbiddenOnClose, bad, "started_at is only allowed on /event/create")
	def(EventTemporalFieldsForbiddenOnUpdate, bad, "started_at and ended_at are not allowed on /event/update")

	def(ObservedAtRequired, bad, "observed_at is required")
	def(CreatedAtForbiddenOnUpdate, bad, "created_at is only allowed on /thing/create")
	def(DeletedAtForbiddenOnUpdate, bad, "deleted_at is only allowed on /thing/delete")
	def(PrimaryImageInvalid, bad, "primary_image must be a non-empty string (a URL) of at most 2048 characters")
	def(ExternalIDsKeyInvalid, bad, "external_ids keys must be 1-64 bytes of [A-Za-z0-9_:.-]")
	def(ExternalIDsValueInvalid, bad, "external_ids values must be a non-empty string of at most 256 bytes, or null")
	def(LocationIncomplete, bad, "location_type and location_value must be sent together")
	def(LocationTypeInvalid, bad, "location_type must be physical, geo, cloud, datacenter or logical")
	def(LocationValueInvalid, bad, "location_value does not match its location_type")

	def(OccurredAtRequired, bad, "occurred_at is required when thing_id is set")
	def(URLInvalid, bad, "url must be an absolute URL of at most 2048 characters")
	def(TTLExpired, bad, "ttl is in the past")

	def(TagsFormatInvalid, bad, "tags must be at most 32 non-empty strings of at most 64 characters")
	def(ImagesFormatInvalid, bad, "images must be at most 32 non-empty strings (URLs) of at most 2048 characters each")
	def(AttrsInvalid, bad, "attrs must be a JSON object")
	def(ExtensionObjectArraysUnsupported, bad, "arrays are not allowed in attrs")
	def(ExtensionObjectNestedObjectUnsupported, bad, "attrs allow one level of nested objects")
	def(MetadataInvalid, bad, "metadata must be a JSON object")
	def(MetadataKeyInvalid, bad, "metadata keys must be non-empty and unique after trimming")
	def(MetadataKeyTooLong, bad, "metadata keys must be at most 64 bytes")
	def(MetadataValueScalarRequired, bad, "metadata values must be strings, numbers or booleans")
	def(MetadataValueInvalid, bad, "metadata text values must be non-empty")
	def(MetadataValueTooLong, bad, "metadata values must be at most 512 bytes")

	def(AuthenticationFailed, http.StatusUnauthorized, "bearer token is missing or wrong")
	def(InvalidAPIToken, http.StatusUnauthorized, "integration token is missing, wrong or revoked")
	def(PasswordMismatch, http.StatusForbidden, "channel password does not match")
	def(ScopeMissing, http.StatusForbidden, "integration token lacks the scope this route needs")
	def(TokenNotFound, http.StatusNotFound, "no such token in this channel")
	def(ChannelNotFound, http.StatusNotFound, "channel not found")
	def(DeviceNotFound, http.StatusNotFound, "device not found; register it with /device/register")
	def(EventNotFound, http.StatusNotFound, "event not found")
	def(ThingNotFound, http.StatusNotFound, "thing not found")
	def(OpNotFound, http.StatusNotFound, "no operation with this op_id in this channel")
	def(RouteNotFound, http.StatusNotFound, "no such route")
	def(MethodNotAllowed, http.StatusMethodNotAllowed, "method not allowed on this route")

	def(EventClosed, http.StatusConflict, "event is closed")
	def(ThingDeleted, http.StatusConflict, "thing is deleted")
	def(OpIDConflict, http.StatusConflict, "op_id was already used with a different body")
	def(SequenceMismatch, http.StatusConflict, "the entity changed since the operation was decided")

	def(PayloadTooLarge, http.StatusRequestEntityTooLarge, "request body is larger than 32 KiB")
	def(RateLimited, http.StatusTooManyRequests, "rate limit exceeded")
	def(InternalError, http.StatusInternalServerError, "internal error")
	def(AppendUnavailable, http.StatusServiceUnavailable, "the operation could not be appended; retry with the same op_id")
	def(BrokerUnavailable, http.StatusServiceUnavailable, "the broker is unavailable; retry later")
	def(ProjectionLagging, http.StatusServiceUnavailable, "the projection has not caught up with your write yet; retry")
	def(ReadUnavailable, http.StatusServiceUnavailable, "no projector answered; retry later")
}

// Lookup returns the catalog entry of c. An unknown code is a programming
// error and yields the internal_error entry so a response is still valid.
func Lookup(c Code) Entry {
	if e, ok := catalog[c]; ok {
		return e
	}
	return catalog[InternalError]
}

// Catalog returns every entry, sorted by status then code.
func Catalog() []Entry {
	out := make([]Entry, 0, len(catalog))
	for _, e := range catalog {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Status != out[j].Status {
			return out[i].Status < out[j].Status
		}
		return out[i].Code < out[j].Code
	})
	return out
}

// Error is a rejection: a catalog code plus the detail shown to the client.
// Detail names the offending field for 400s.
type Error struct {
	Code   Code
	Detail string
	// RetryAfter, in seconds, is sent as Retry-After on 429 and 503.
	RetryAfter int
}

// New returns an *Error with the catalog's message.
func New(c Code) *Error { return &Error{Code: c, Detail: Lookup(c).Message} }

// Field returns an *Error whose detail names the field.
func Field(c Code, field string) *Error {
	return &Error{Code: c, Detail: field + ": " + Lookup(c).Message}
}

// Fieldf returns an *Error with a formatted detail prefixed by the field.
func Fieldf(c Code, field, format string, args ...any) *Error {
	return &Error{Code: c, Detail: field + ": " + fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Detail }

// Status is the HTTP status of e's code.
func (e *Error) Status() int { return Lookup(e.Code).Status }
