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

// Entry describes one code: the HTTP status it is answered with, the
// message used when the rejection has no more specific detail (English),
// the same message in every language the gateway answers in, and the
// problem category and retryability of PushGo's problem object.
type Entry struct {
	Code   Code
	Status int
	// Message is the English text (Texts.En).
	Message   string
	Texts     Texts
	Category  Category
	Retryable bool
}

// Text is e's message in l (English for a locale the catalog lacks).
func (e Entry) Text(l Locale) string { return e.Texts.In(l) }

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
	CompatKeyInvalid            Code = "compat_key_invalid"
	ChannelTypePlatformMismatch Code = "channel_type_platform_mismatch"
	ChannelTypeRequired         Code = "channel_type_required"
	DeviceKeyRequired           Code = "device_key_required"
	InvalidChannelType          Code = "invalid_channel_type"
	InvalidChannels             Code = "invalid_channels"
	ChannelsLimitExceeded       Code = "channels_limit_exceeded"
	DeliveryIDRequired          Code = "delivery_id_required"
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
	ExtensionObjectKeyRequired             Code = "extension_object_key_required"
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
	// DeviceNotFound is no longer answered: an unknown device key answers
	// DeviceKeyNotFound, the code the PushGo apps re-register on. Kept so
	// the code is never reused with another meaning.
	DeviceNotFound     Code = "device_not_found"
	DeviceKeyNotFound  Code = "device_key_not_found"
	EventNotFound      Code = "event_not_found"
	ThingNotFound      Code = "thing_not_found"
	SendStatusNotFound Code = "send_status_not_found"
	RouteNotFound      Code = "route_not_found"
	MethodNotAllowed   Code = "method_not_allowed"

	// 409.
	EventClosed  Code = "event_closed"
	ThingDeleted Code = "thing_deleted"
	OpIDConflict Code = "op_id_conflict"
	// OpIDAmbiguous: /send_status/{op_id} without channel_id names an
	// op_id that more than one channel used.
	OpIDAmbiguous Code = "op_id_ambiguous"
	// SequenceMismatch is internal: an operation conditioned on the
	// entity's last sequence (the gateway's own timeout close) lost to a
	// later operation. Never answered to a client.
	SequenceMismatch Code = "sequence_mismatch"

	// 413, 429, 500, 503.
	PayloadTooLarge Code = "payload_too_large"
	// OperationTooLarge: the operation a request makes (an integration's
	// report with every attribute it carries) is over ops.MaxContentBytes;
	// refused before anything is written, since the log could not hold it.
	OperationTooLarge Code = "operation_too_large"
	RateLimited       Code = "rate_limited"
	InternalError     Code = "internal_error"
	AppendUnavailable Code = "append_unavailable"
	BrokerUnavailable Code = "broker_unavailable"
	ProjectionLagging Code = "projection_lagging"
	ReadUnavailable   Code = "read_unavailable"
	// ServiceNotReady (503, /readyz): a service of the process is not
	// ready (a projector rebuilding or catching up, a pusher not yet
	// consuming); the error says which and why. The broker's connection
	// down is broker_unavailable.
	ServiceNotReady Code = "service_not_ready"
	// StoreFull (507): the broker refused the write because its storage is
	// at its limit (PUSHGO_MAX_STORE, or the account's or stream's limit on
	// a cluster). Nothing was written. Retrying does not help until an
	// operator frees or adds storage: not retryable, no Retry-After.
	StoreFull Code = "store_full"
	// PrivateChannelDisabled: the device asked for PushGo's private
	// transport (channel_type private: its own QUIC / TCP / WebSocket
	// connection to the gateway), which this gateway does not serve. The
	// code and the 503 are PushGo's for a gateway whose private channel is
	// off; it is not retryable and carries no Retry-After.
	PrivateChannelDisabled Code = "private_channel_disabled"

	// TooManyStreams (429): GET /channel/stream over the per-process,
	// the per-channel or the per-client-address cap on open streams
	// (PUSHGO_STREAMS_MAX, PUSHGO_STREAMS_PER_CHANNEL_MAX,
	// PUSHGO_STREAMS_PER_CLIENT_MAX); carries Retry-After.
	TooManyStreams Code = "too_many_streams"

	// UnsupportedContentEncoding (415): the body's Content-Encoding is
	// one the gateway does not decode (it decodes gzip; identity is none).
	// Nothing of the body was read; the answer's Accept-Encoding names
	// what is taken (RFC 9110, section 15.5.16).
	UnsupportedContentEncoding Code = "unsupported_content_encoding"

	// Abuse limits (ingest/limits).
	//
	// PasswordCheckSkipped (409): a /channel/sync item not checked because
	// eight earlier items' passwords did not match (a sync stops there, so
	// one request cannot make the gateway compute many password hashes).
	PasswordCheckSkipped Code = "password_check_skipped"
	// TokenLimitReached (409): the channel has the most integration tokens
	// allowed (PUSHGO_LIMIT_TOKENS_PER_CHANNEL).
	TokenLimitReached Code = "token_limit_reached"
	// TooManyPasswordFailures (429): the client address or the channel
	// failed too many password checks lately; refused before any hashing
	// until Retry-After.
	TooManyPasswordFailures Code = "too_many_password_failures"
	// DeviceLimitReached (503): the gateway holds the most devices it is
	// configured for (PUSHGO_LIMIT_DEVICES); a new device is refused.
	// Retrying does not help until an operator raises the cap or devices
	// are removed: not retryable, no Retry-After.
	DeviceLimitReached Code = "device_limit_reached"
)

var catalog = map[Code]Entry{}

// T is one code's message per language: English, Simplified Chinese,
// Korean, Japanese (TestEveryCodeHasEveryLanguage checks that none is
// empty). Field names and values stay as the API spells them.
type T = Texts

func def(c Code, status int, texts T) {
	if _, dup := catalog[c]; dup {
		panic("apierr: duplicate code " + string(c))
	}
	cat, retry := categoryOf(c, status)
	catalog[c] = Entry{Code: c, Status: status, Message: texts.En, Texts: texts, Category: cat, Retryable: retry}
}

func init() {
	const bad = http.StatusBadRequest
	def(MissingJSONContentType, bad, T{"Content-Type must be application/json", "Content-Type 必须为 application/json", "Content-Type은 application/json이어야 합니다", "Content-Type は application/json である必要があります"})
	def(InvalidJSONSyntax, bad, T{"request body is not valid JSON", "请求体不是有效的 JSON", "요청 본문이 올바른 JSON이 아닙니다", "リクエスト本文が正しい JSON ではありません"})
	def(InvalidJSONData, bad, T{"request body does not match the route's schema", "请求体与该接口的结构不符", "요청 본문이 이 경로의 스키마와 맞지 않습니다", "リクエスト本文がこのルートのスキーマと一致しません"})
	def(InvalidRequestBody, bad, T{"request body is invalid", "请求体无效", "요청 본문이 올바르지 않습니다", "リクエスト本文が不正です"})
	def(InvalidQuery, bad, T{"query string is invalid", "查询字符串无效", "쿼리 문자열이 올바르지 않습니다", "クエリ文字列が不正です"})
	def(InvalidState, bad, T{"state must be one of the entity's states", "state 必须是该实体的状态之一", "state는 해당 엔터티의 상태 중 하나여야 합니다", "state はエンティティの状態のいずれかである必要があります"})
	def(InvalidLimit, bad, T{"limit is out of range", "limit 超出范围", "limit이 허용 범위를 벗어났습니다", "limit が範囲外です"})
	def(InvalidCursor, bad, T{"cursor is not one this gateway returned", "cursor 不是本网关返回的值", "cursor가 이 게이트웨이가 반환한 값이 아닙니다", "cursor はこのゲートウェイが返した値ではありません"})
	def(InvalidKinds, bad, T{"kinds must be a list of event, thing, message", "kinds 必须是由 event、thing、message 组成的列表", "kinds는 event, thing, message로 이루어진 목록이어야 합니다", "kinds は event、thing、message からなるリストである必要があります"})
	def(TokenNameRequired, bad, T{"name is required", "name 为必填项", "name은 필수입니다", "name は必須です"})
	def(InvalidTokenName, bad, T{"name must be 1-128 characters without control characters", "name 必须为 1-128 个字符，且不含控制字符", "name은 제어 문자 없이 1-128자여야 합니다", "name は制御文字を含まない 1〜128 文字である必要があります"})
	def(InvalidScopes, bad, T{"scopes must be a non-empty list of known scopes (events.ingest, events.read)", "scopes 必须是非空的已知权限列表（events.ingest、events.read）", "scopes는 알려진 범위(events.ingest, events.read)로 된 비어 있지 않은 목록이어야 합니다", "scopes は既知のスコープ（events.ingest、events.read）からなる空でないリストである必要があります"})
	def(TokenIDRequired, bad, T{"token_id is required", "token_id 为必填项", "token_id는 필수입니다", "token_id は必須です"})
	def(InvalidTokenID, bad, T{"token_id is not a token id this gateway issued", "token_id 不是本网关签发的令牌 ID", "token_id가 이 게이트웨이가 발급한 토큰 ID가 아닙니다", "token_id はこのゲートウェイが発行したトークン ID ではありません"})
	def(InvalidEntitySelector, bad, T{"entitySelector is invalid", "entitySelector 无效", "entitySelector가 올바르지 않습니다", "entitySelector が不正です"})

	def(ChannelIDRequired, bad, T{"channel_id is required", "channel_id 为必填项", "channel_id는 필수입니다", "channel_id は必須です"})
	def(InvalidChannelID, bad, T{"channel_id must be a 26-character Crockford base32 id", "channel_id 必须是 26 位 Crockford base32 ID", "channel_id는 26자의 Crockford base32 ID여야 합니다", "channel_id は 26 文字の Crockford base32 ID である必要があります"})
	def(PasswordRequired, bad, T{"password is required", "password 为必填项", "password는 필수입니다", "password は必須です"})
	def(InvalidPassword, bad, T{"password must be 8-128 bytes after trimming", "password 去除首尾空白后必须为 8-128 字节", "password는 앞뒤 공백을 제거한 뒤 8-128바이트여야 합니다", "password は前後の空白を除いて 8〜128 バイトである必要があります"})
	def(ChannelNameRequired, bad, T{"channel_name is required", "channel_name 为必填项", "channel_name은 필수입니다", "channel_name は必須です"})
	def(InvalidChannelName, bad, T{"channel_name must be 1-128 characters without control characters", "channel_name 必须为 1-128 个字符，且不含控制字符", "channel_name은 제어 문자 없이 1-128자여야 합니다", "channel_name は制御文字を含まない 1〜128 文字である必要があります"})
	def(InvalidOpID, bad, T{"op_id must be 1-128 characters of [A-Za-z0-9_:-]", "op_id 必须为 1-128 个 [A-Za-z0-9_:-] 字符", "op_id는 [A-Za-z0-9_:-] 문자 1-128자여야 합니다", "op_id は [A-Za-z0-9_:-] の 1〜128 文字である必要があります"})
	def(EventIDRequired, bad, T{"event_id is required", "event_id 为必填项", "event_id는 필수입니다", "event_id は必須です"})
	def(InvalidEventID, bad, T{"event_id must be 1-64 characters of [A-Za-z0-9_:-]", "event_id 必须为 1-64 个 [A-Za-z0-9_:-] 字符", "event_id는 [A-Za-z0-9_:-] 문자 1-64자여야 합니다", "event_id は [A-Za-z0-9_:-] の 1〜64 文字である必要があります"})
	def(EventIDForbiddenOnCreate, bad, T{"event_id must not be sent on create", "创建时不得提供 event_id", "생성 시에는 event_id를 보내면 안 됩니다", "作成時に event_id を送ってはいけません"})
	def(ThingIDRequired, bad, T{"thing_id is required", "thing_id 为必填项", "thing_id는 필수입니다", "thing_id は必須です"})
	def(InvalidThingID, bad, T{"thing_id must be 1-64 characters of [A-Za-z0-9_:-]", "thing_id 必须为 1-64 个 [A-Za-z0-9_:-] 字符", "thing_id는 [A-Za-z0-9_:-] 문자 1-64자여야 합니다", "thing_id は [A-Za-z0-9_:-] の 1〜64 文字である必要があります"})
	def(ThingIDForbiddenOnCreate, bad, T{"thing_id must not be sent on create", "创建时不得提供 thing_id", "생성 시에는 thing_id를 보내면 안 됩니다", "作成時に thing_id を送ってはいけません"})
	def(InvalidTimestamp, bad, T{"timestamp must be a non-negative integer of seconds or milliseconds", "时间戳必须是以秒或毫秒为单位的非负整数", "타임스탬프는 초 또는 밀리초 단위의 음수가 아닌 정수여야 합니다", "タイムスタンプは秒またはミリ秒単位の非負の整数である必要があります"})
	def(CiphertextTooLong, bad, T{"ciphertext must be at most 16 KiB", "ciphertext 不得超过 16 KiB", "ciphertext는 최대 16KiB까지 가능합니다", "ciphertext は 16 KiB 以下である必要があります"})
	def(InvalidCiphertext, bad, T{"ciphertext must be a non-empty string", "ciphertext 必须是非空字符串", "ciphertext는 비어 있지 않은 문자열이어야 합니다", "ciphertext は空でない文字列である必要があります"})

	def(CompatKeyInvalid, bad, T{"compat key must be '<channel_id>:<password>'", "兼容接口的 key 必须是 '<channel_id>:<password>'", "호환 키는 '<channel_id>:<password>' 형식이어야 합니다", "互換キーは '<channel_id>:<password>' の形式である必要があります"})
	def(ChannelBindingInvalid, bad, T{"exactly one of channel_id and channel_name is required", "channel_id 与 channel_name 必须且只能提供一个", "channel_id와 channel_name 중 정확히 하나를 보내야 합니다", "channel_id と channel_name のどちらか一方だけを送る必要があります"})
	def(ChannelTypePlatformMismatch, bad, T{"apns requires an Apple platform (ios, ipados, macos, watchos) and fcm requires android", "apns 需要 Apple 平台（ios、ipados、macos、watchos），fcm 需要 android", "apns에는 Apple 플랫폼(ios, ipados, macos, watchos)이, fcm에는 android가 필요합니다", "apns には Apple のプラットフォーム（ios、ipados、macos、watchos）、fcm には android が必要です"})
	def(ChannelTypeRequired, bad, T{"channel_type is required", "channel_type 为必填项", "channel_type은 필수입니다", "channel_type は必須です"})
	def(DeviceKeyRequired, bad, T{"device_key is required", "device_key 为必填项", "device_key는 필수입니다", "device_key は必須です"})
	def(InvalidChannelType, bad, T{"channel_type must be apns or fcm", "channel_type 必须为 apns 或 fcm", "channel_type은 apns 또는 fcm이어야 합니다", "channel_type は apns または fcm である必要があります"})
	def(InvalidChannels, bad, T{"channels must be a list of {channel_id, password} objects with distinct channel ids", "channels 必须是由 {channel_id, password} 对象组成、channel_id 互不重复的列表", "channels는 channel_id가 서로 다른 {channel_id, password} 객체의 목록이어야 합니다", "channels は channel_id が重複しない {channel_id, password} オブジェクトのリストである必要があります"})
	def(ChannelsLimitExceeded, bad, T{"channels must have at most 2000 items", "channels 最多 2000 项", "channels는 최대 2000개까지 가능합니다", "channels は 2000 件以下である必要があります"})
	def(InvalidDeviceKey, bad, T{"device_key must be 32 hexadecimal characters", "device_key 必须是 32 位十六进制字符", "device_key는 16진수 32자여야 합니다", "device_key は 16 進数 32 文字である必要があります"})
	def(InvalidPlatform, bad, T{"platform must be one of ios, ipados, macos, watchos, android", "platform 必须是 ios、ipados、macos、watchos、android 之一", "platform은 ios, ipados, macos, watchos, android 중 하나여야 합니다", "platform は ios、ipados、macos、watchos、android のいずれかである必要があります"})
	def(InvalidProviderToken, bad, T{"provider_token must be 64-200 hexadecimal characters for apns, 1-4096 visible ASCII characters for fcm", "provider_token 对 apns 必须是 64-200 位十六进制字符，对 fcm 必须是 1-4096 个可见 ASCII 字符", "provider_token은 apns의 경우 16진수 64-200자, fcm의 경우 보이는 ASCII 문자 1-4096자여야 합니다", "provider_token は apns では 16 進数 64〜200 文字、fcm では表示可能な ASCII 1〜4096 文字である必要があります"})
	def(PlatformRequired, bad, T{"platform is required", "platform 为必填项", "platform은 필수입니다", "platform は必須です"})
	def(ProviderTokenRequired, bad, T{"provider_token is required", "provider_token 为必填项", "provider_token은 필수입니다", "provider_token は必須です"})
	def(DeliveryIDRequired, bad, T{"delivery_id is required", "delivery_id 为必填项", "delivery_id는 필수입니다", "delivery_id は必須です"})

	def(TitleRequired, bad, T{"title is required", "title 为必填项", "title은 필수입니다", "title は必須です"})
	def(TitleTooLong, bad, T{"title must be at most 256 characters", "title 不得超过 256 个字符", "title은 최대 256자까지 가능합니다", "title は 256 文字以下である必要があります"})
	def(StatusRequired, bad, T{"status is required", "status 为必填项", "status는 필수입니다", "status は必須です"})
	def(StatusTooLong, bad, T{"status must be at most 24 characters", "status 不得超过 24 个字符", "status는 최대 24자까지 가능합니다", "status は 24 文字以下である必要があります"})
	def(MessageRequired, bad, T{"message is required", "message 为必填项", "message는 필수입니다", "message は必須です"})
	def(MessageTooLong, bad, T{"message must be at most 512 characters", "message 不得超过 512 个字符", "message는 최대 512자까지 가능합니다", "message は 512 文字以下である必要があります"})
	def(SeverityRequired, bad, T{"severity is required", "severity 为必填项", "severity는 필수입니다", "severity は必須です"})
	def(InvalidSeverity, bad, T{"severity must be one of critical, high, normal, low", "severity 必须是 critical、high、normal、low 之一", "severity는 critical, high, normal, low 중 하나여야 합니다", "severity は critical、high、normal、low のいずれかである必要があります"})
	def(EventTimeRequired, bad, T{"event_time is required", "event_time 为必填项", "event_time은 필수입니다", "event_time は必須です"})
	def(EndedAtForbiddenOnCreate, bad, T{"ended_at is only allowed on /event/close", "ended_at 仅允许在 /event/close 中提供", "ended_at은 /event/close에서만 허용됩니다", "ended_at は /event/close でのみ指定できます"})
	def(StartedAtForbiddenOnClose, bad, T{"started_at is only allowed on /event/create", "started_at 仅允许在 /event/create 中提供", "started_at은 /event/create에서만 허용됩니다", "started_at は /event/create でのみ指定できます"})
	def(EventTemporalFieldsForbiddenOnUpdate, bad, T{"started_at and ended_at are not allowed on /event/update", "/event/update 中不允许提供 started_at 和 ended_at", "/event/update에서는 started_at과 ended_at을 보낼 수 없습니다", "/event/update では started_at と ended_at は指定できません"})

	def(ObservedAtRequired, bad, T{"observed_at is required", "observed_at 为必填项", "observed_at은 필수입니다", "observed_at は必須です"})
	def(CreatedAtForbiddenOnUpdate, bad, T{"created_at is only allowed on /thing/create", "created_at 仅允许在 /thing/create 中提供", "created_at은 /thing/create에서만 허용됩니다", "created_at は /thing/create でのみ指定できます"})
	def(DeletedAtForbiddenOnUpdate, bad, T{"deleted_at is only allowed on /thing/delete", "deleted_at 仅允许在 /thing/delete 中提供", "deleted_at은 /thing/delete에서만 허용됩니다", "deleted_at は /thing/delete でのみ指定できます"})
	def(PrimaryImageInvalid, bad, T{"primary_image must be a non-empty string (a URL) of at most 2048 characters", "primary_image 必须是不超过 2048 个字符的非空字符串（URL）", "primary_image는 최대 2048자의 비어 있지 않은 문자열(URL)이어야 합니다", "primary_image は 2048 文字以下の空でない文字列（URL）である必要があります"})
	def(ExternalIDsKeyInvalid, bad, T{"external_ids keys must be 1-64 bytes of [A-Za-z0-9_:.-]", "external_ids 的键必须为 1-64 字节的 [A-Za-z0-9_:.-]", "external_ids의 키는 [A-Za-z0-9_:.-] 1-64바이트여야 합니다", "external_ids のキーは [A-Za-z0-9_:.-] の 1〜64 バイトである必要があります"})
	def(ExternalIDsValueInvalid, bad, T{"external_ids values must be a non-empty string of at most 256 bytes, or null", "external_ids 的值必须是不超过 256 字节的非空字符串或 null", "external_ids의 값은 최대 256바이트의 비어 있지 않은 문자열이거나 null이어야 합니다", "external_ids の値は 256 バイト以下の空でない文字列か null である必要があります"})
	def(LocationIncomplete, bad, T{"location_type and location_value must be sent together", "location_type 与 location_value 必须同时提供", "location_type과 location_value는 함께 보내야 합니다", "location_type と location_value は一緒に送る必要があります"})
	def(LocationTypeInvalid, bad, T{"location_type must be physical, geo, cloud, datacenter or logical", "location_type 必须是 physical、geo、cloud、datacenter 或 logical", "location_type은 physical, geo, cloud, datacenter, logical 중 하나여야 합니다", "location_type は physical、geo、cloud、datacenter、logical のいずれかである必要があります"})
	def(LocationValueInvalid, bad, T{"location_value does not match its location_type", "location_value 与其 location_type 不符", "location_value가 location_type과 맞지 않습니다", "location_value が location_type と一致しません"})

	def(OccurredAtRequired, bad, T{"occurred_at is required when thing_id is set", "提供 thing_id 时 occurred_at 为必填项", "thing_id를 보낼 때는 occurred_at이 필수입니다", "thing_id を指定するときは occurred_at が必須です"})
	def(URLInvalid, bad, T{"url must be a link the apps open, of at most 4096 characters", "url 必须是应用可打开的链接，且不超过 4096 个字符", "url은 앱이 열 수 있는 최대 4096자의 링크여야 합니다", "url はアプリが開ける 4096 文字以下のリンクである必要があります"})
	def(TTLExpired, bad, T{"ttl is in the past", "ttl 已过期", "ttl이 이미 지난 시각입니다", "ttl が過去の時刻です"})

	def(TagsFormatInvalid, bad, T{"tags must be at most 32 non-empty strings of at most 64 characters", "tags 最多 32 个非空字符串，每个不超过 64 个字符", "tags는 각 64자 이하의 비어 있지 않은 문자열 최대 32개여야 합니다", "tags は 64 文字以下の空でない文字列 32 個以下である必要があります"})
	def(ImagesFormatInvalid, bad, T{"images must be at most 32 non-empty strings (URLs) of at most 2048 characters each", "images 最多 32 个非空字符串（URL），每个不超过 2048 个字符", "images는 각 2048자 이하의 비어 있지 않은 문자열(URL) 최대 32개여야 합니다", "images は各 2048 文字以下の空でない文字列（URL）32 個以下である必要があります"})
	def(AttrsInvalid, bad, T{"attrs must be a JSON object", "attrs 必须是 JSON 对象", "attrs는 JSON 객체여야 합니다", "attrs は JSON オブジェクトである必要があります"})
	def(ExtensionObjectKeyRequired, bad, T{"attrs keys must not be empty or blank", "attrs 的键不能为空", "attrs의 키는 비어 있을 수 없습니다", "attrs のキーは空にできません"})
	def(ExtensionObjectArraysUnsupported, bad, T{"arrays are not allowed in attrs", "attrs 中不允许使用数组", "attrs에는 배열을 쓸 수 없습니다", "attrs に配列は使えません"})
	def(ExtensionObjectNestedObjectUnsupported, bad, T{"attrs allow one level of nested objects", "attrs 仅允许一层嵌套对象", "attrs는 한 단계의 중첩 객체만 허용합니다", "attrs で入れ子にできるオブジェクトは 1 階層までです"})
	def(MetadataInvalid, bad, T{"metadata must be a JSON object", "metadata 必须是 JSON 对象", "metadata는 JSON 객체여야 합니다", "metadata は JSON オブジェクトである必要があります"})
	def(MetadataKeyInvalid, bad, T{"metadata keys must be non-empty and unique after trimming", "metadata 的键去除首尾空白后必须非空且不重复", "metadata의 키는 앞뒤 공백을 제거한 뒤 비어 있지 않고 서로 달라야 합니다", "metadata のキーは前後の空白を除いて空でなく、重複しない必要があります"})
	def(MetadataKeyTooLong, bad, T{"metadata keys must be at most 64 bytes", "metadata 的键不得超过 64 字节", "metadata의 키는 최대 64바이트까지 가능합니다", "metadata のキーは 64 バイト以下である必要があります"})
	def(MetadataValueScalarRequired, bad, T{"metadata values must be strings, numbers or booleans", "metadata 的值必须是字符串、数字或布尔值", "metadata의 값은 문자열, 숫자 또는 불리언이어야 합니다", "metadata の値は文字列、数値、真偽値のいずれかである必要があります"})
	def(MetadataValueInvalid, bad, T{"metadata text values must be non-empty", "metadata 的文本值不能为空", "metadata의 텍스트 값은 비어 있으면 안 됩니다", "metadata のテキスト値は空にできません"})
	def(MetadataValueTooLong, bad, T{"metadata values must be at most 512 bytes", "metadata 的值不得超过 512 字节", "metadata의 값은 최대 512바이트까지 가능합니다", "metadata の値は 512 バイト以下である必要があります"})

	def(AuthenticationFailed, http.StatusUnauthorized, T{"bearer token is missing or wrong", "Bearer 令牌缺失或错误", "Bearer 토큰이 없거나 올바르지 않습니다", "Bearer トークンがないか、誤っています"})
	def(InvalidAPIToken, http.StatusUnauthorized, T{"integration token is missing, wrong or revoked", "集成令牌缺失、错误或已吊销", "통합 토큰이 없거나 올바르지 않거나 폐기되었습니다", "連携トークンがないか、誤っているか、失効しています"})
	def(PasswordMismatch, http.StatusForbidden, T{"channel password does not match", "频道密码不正确", "채널 비밀번호가 일치하지 않습니다", "チャンネルのパスワードが一致しません"})
	def(ScopeMissing, http.StatusForbidden, T{"integration token lacks the scope this route needs", "集成令牌缺少该接口所需的权限", "통합 토큰에 이 경로에 필요한 범위가 없습니다", "連携トークンにこのルートに必要なスコープがありません"})
	def(TokenNotFound, http.StatusNotFound, T{"no such token in this channel", "该频道中没有此令牌", "이 채널에 해당 토큰이 없습니다", "このチャンネルにそのトークンはありません"})
	def(ChannelNotFound, http.StatusNotFound, T{"channel not found", "频道不存在", "채널을 찾을 수 없습니다", "チャンネルが見つかりません"})
	def(DeviceNotFound, http.StatusNotFound, T{"device not found; register it with /device/register", "设备不存在；请通过 /device/register 注册", "기기를 찾을 수 없습니다. /device/register로 등록하세요", "デバイスが見つかりません。/device/register で登録してください"})
	def(DeviceKeyNotFound, http.StatusNotFound, T{"device_key not found; register the device again with /device/register", "device_key 不存在；请通过 /device/register 重新注册设备", "device_key를 찾을 수 없습니다. /device/register로 기기를 다시 등록하세요", "device_key が見つかりません。/device/register でデバイスを登録し直してください"})
	def(EventNotFound, http.StatusNotFound, T{"event not found", "事件不存在", "이벤트를 찾을 수 없습니다", "イベントが見つかりません"})
	def(ThingNotFound, http.StatusNotFound, T{"thing not found", "对象不存在", "Thing을 찾을 수 없습니다", "Thing が見つかりません"})
	def(SendStatusNotFound, http.StatusNotFound, T{"send status not found: no operation with this op_id", "未找到发送状态：没有使用此 op_id 的操作", "전송 상태를 찾을 수 없습니다: 이 op_id를 가진 작업이 없습니다", "送信状態が見つかりません: この op_id の操作はありません"})
	def(RouteNotFound, http.StatusNotFound, T{"no such route", "没有此接口", "해당 경로가 없습니다", "そのルートはありません"})
	def(MethodNotAllowed, http.StatusMethodNotAllowed, T{"method not allowed on this route", "该接口不允许此请求方法", "이 경로에서 허용되지 않는 메서드입니다", "このルートでは許可されていないメソッドです"})

	def(EventClosed, http.StatusConflict, T{"event is closed", "事件已关闭", "이벤트가 이미 종료되었습니다", "イベントは終了しています"})
	def(ThingDeleted, http.StatusConflict, T{"thing is deleted", "对象已删除", "Thing이 삭제되었습니다", "Thing は削除されています"})
	def(OpIDConflict, http.StatusConflict, T{"op_id was already used with a different body", "该 op_id 已用于不同的请求内容", "op_id가 이미 다른 본문으로 사용되었습니다", "op_id はすでに別の本文で使われています"})
	def(OpIDAmbiguous, http.StatusConflict, T{"op_id was used in more than one channel; add ?channel_id= to choose one", "该 op_id 在多个频道中使用过；请添加 ?channel_id= 指定频道", "op_id가 여러 채널에서 사용되었습니다. ?channel_id=를 추가해 하나를 고르세요", "op_id が複数のチャンネルで使われています。?channel_id= を付けてどれか一つを選んでください"})
	def(PasswordCheckSkipped, http.StatusConflict, T{"not checked: too many earlier channels of this sync failed their password checks; correct them and sync again", "未检查：本次同步中前面有过多频道密码校验失败；请更正后重新同步", "확인하지 않음: 이 동기화의 앞선 채널 여러 개가 비밀번호 확인에 실패했습니다. 바로잡은 뒤 다시 동기화하세요", "未確認: この同期で先の多くのチャンネルがパスワード確認に失敗しました。修正してから再度同期してください"})
	def(TokenLimitReached, http.StatusConflict, T{"the channel has the most integration tokens allowed; revoke one first", "该频道的集成令牌已达上限；请先吊销一个", "이 채널의 통합 토큰이 허용 한도에 도달했습니다. 먼저 하나를 폐기하세요", "このチャンネルの連携トークンが上限に達しています。先に一つ失効させてください"})
	def(SequenceMismatch, http.StatusConflict, T{"the entity changed since the operation was decided", "操作判定后实体已发生变化", "작업이 결정된 뒤 엔터티가 바뀌었습니다", "操作の判断後にエンティティが変更されました"})

	def(PayloadTooLarge, http.StatusRequestEntityTooLarge, T{"request body is larger than 32 KiB", "请求体超过 32 KiB", "요청 본문이 32KiB보다 큽니다", "リクエスト本文が 32 KiB を超えています"})
	def(OperationTooLarge, http.StatusRequestEntityTooLarge, T{"the operation this request makes is larger than 512 KiB; send fewer or shorter attributes", "该请求生成的操作超过 512 KiB；请减少属性数量或长度", "이 요청이 만드는 작업이 512KiB보다 큽니다. 속성을 줄이거나 짧게 보내세요", "このリクエストが作る操作が 512 KiB を超えています。属性を減らすか短くしてください"})
	def(UnsupportedContentEncoding, http.StatusUnsupportedMediaType, T{"Content-Encoding must be gzip or identity", "Content-Encoding 必须为 gzip 或 identity", "Content-Encoding은 gzip 또는 identity여야 합니다", "Content-Encoding は gzip または identity である必要があります"})
	def(RateLimited, http.StatusTooManyRequests, T{"rate limit exceeded", "请求过于频繁", "요청 한도를 초과했습니다", "レート制限を超えました"})
	def(TooManyStreams, http.StatusTooManyRequests, T{"too many live streams are open; retry later", "打开的实时流过多；请稍后重试", "열린 실시간 스트림이 너무 많습니다. 잠시 후 다시 시도하세요", "開いているライブストリームが多すぎます。しばらくしてから再試行してください"})
	def(TooManyPasswordFailures, http.StatusTooManyRequests, T{"too many failed password checks; retry after the seconds in Retry-After", "密码校验失败次数过多；请在 Retry-After 指定的秒数后重试", "비밀번호 확인 실패가 너무 많습니다. Retry-After의 초만큼 기다린 뒤 다시 시도하세요", "パスワードの確認失敗が多すぎます。Retry-After の秒数が過ぎてから再試行してください"})
	def(InternalError, http.StatusInternalServerError, T{"internal error", "内部错误", "내부 오류", "内部エラー"})
	def(AppendUnavailable, http.StatusServiceUnavailable, T{"the operation could not be appended; retry with the same op_id", "操作未能写入；请使用相同的 op_id 重试", "작업을 기록하지 못했습니다. 같은 op_id로 다시 시도하세요", "操作を記録できませんでした。同じ op_id で再試行してください"})
	def(BrokerUnavailable, http.StatusServiceUnavailable, T{"the broker is unavailable; retry later", "消息代理不可用；请稍后重试", "브로커를 사용할 수 없습니다. 잠시 후 다시 시도하세요", "ブローカーを利用できません。しばらくしてから再試行してください"})
	def(ProjectionLagging, http.StatusServiceUnavailable, T{"the projection has not caught up with your write yet; retry", "读取视图尚未追上您的写入；请重试", "프로젝션이 아직 쓰기를 따라잡지 못했습니다. 다시 시도하세요", "プロジェクションがまだ書き込みに追いついていません。再試行してください"})
	def(ServiceNotReady, http.StatusServiceUnavailable, T{"a service of this process is not ready; retry later", "此进程的某项服务尚未就绪；请稍后重试", "이 프로세스의 서비스가 아직 준비되지 않았습니다. 잠시 후 다시 시도하세요", "このプロセスのサービスがまだ準備できていません。しばらくしてから再試行してください"})
	def(ReadUnavailable, http.StatusServiceUnavailable, T{"no projector answered; retry later", "没有 projector 响应；请稍后重试", "응답한 projector가 없습니다. 잠시 후 다시 시도하세요", "応答した projector がありません。しばらくしてから再試行してください"})
	def(DeviceLimitReached, http.StatusServiceUnavailable, T{"the gateway holds the most devices it is configured for; its operator can raise the limit", "网关的设备数已达配置上限；可由运维人员调高上限", "게이트웨이의 기기 수가 설정된 한도에 도달했습니다. 운영자가 한도를 올릴 수 있습니다", "ゲートウェイのデバイス数が設定上限に達しています。運用者が上限を引き上げられます"})
	def(StoreFull, http.StatusInsufficientStorage, T{"the gateway's storage is full: nothing was written; its operator must free or add storage", "网关存储已满：未写入任何内容；需由运维人员释放或扩充存储", "게이트웨이 저장소가 가득 찼습니다. 아무것도 기록되지 않았습니다. 운영자가 저장소를 비우거나 늘려야 합니다", "ゲートウェイのストレージが満杯です。何も書き込まれていません。運用者がストレージを空けるか増やす必要があります"})
	def(PrivateChannelDisabled, http.StatusServiceUnavailable, T{"private channel is disabled: this gateway delivers through apns and fcm only, not through PushGo's private transport (QUIC, TCP, WebSocket)", "当前网关未开启私有通道：仅通过 apns 和 fcm 推送，不支持 PushGo 私有传输（QUIC、TCP、WebSocket）", "비공개 채널이 꺼져 있습니다. 이 게이트웨이는 apns와 fcm으로만 전달하며 PushGo 비공개 전송(QUIC, TCP, WebSocket)은 지원하지 않습니다", "プライベートチャンネルは無効です。このゲートウェイは apns と fcm でのみ配信し、PushGo のプライベート転送（QUIC、TCP、WebSocket）には対応していません"})
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
	// Field is the offending field when the rejection names one (Field,
	// Fieldf, Within): a localized answer keeps it in front of the
	// translated message, as Detail has it in front of the English one.
	Field string
	// RetryAfter, in seconds, is sent as Retry-After on 429 and 503.
	RetryAfter int
	// OpID, on a write that could not be appended (503), is the op_id to
	// retry with: the client's, or the one the gateway generated for a
	// write sent without one. An append that timed out may have landed, and
	// only a retry with that op_id is answered as the first time instead
	// of appended again. Sent as problem.op_id.
	OpID string
}

// New returns an *Error with the catalog's message.
func New(c Code) *Error { return &Error{Code: c, Detail: Lookup(c).Message} }

// Field returns an *Error whose detail names the field.
func Field(c Code, field string) *Error {
	return &Error{Code: c, Field: field, Detail: field + ": " + Lookup(c).Message}
}

// Fieldf returns an *Error with a formatted detail prefixed by the field.
func Fieldf(c Code, field, format string, args ...any) *Error {
	return &Error{Code: c, Field: field, Detail: field + ": " + fmt.Sprintf(format, args...)}
}

// Within returns err with its field nested under path ("channels.3" and
// "password" make "channels.3.password"); an err without a field gets path
// as its field.
func Within(path string, err *Error) *Error {
	e := *err
	if e.Field == "" {
		e.Field, e.Detail = path, path+": "+e.Detail
		return &e
	}
	e.Field, e.Detail = path+"."+e.Field, path+"."+e.Detail
	return &e
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Detail }

// Status is the HTTP status of e's code.
func (e *Error) Status() int { return Lookup(e.Code).Status }

// Text is the error text answered in l: the detail (naming the field, with
// whatever the rejection added) in English; in another language the
// catalog's translated message, after the field when there is one. The
// English detail is always in the problem object's detail.
func (e *Error) Text(l Locale) string {
	if l == English || l == "" {
		return e.Detail
	}
	msg := Lookup(e.Code).Text(l)
	if e.Field != "" {
		return e.Field + ": " + msg
	}
	return msg
}
