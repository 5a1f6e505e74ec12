package ops

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestEventRules covers spec §4, route by route.
func TestEventRules(t *testing.T) {
	ec, eu, ecl := eventCreateBody, eventUpdateBody, eventCloseBody
	chars := func(n int) string { return q(strings.Repeat("ü", n)) }
	runRuleCases(t, []ruleCase{
		// Route-required fields of /event/create.
		ok("create/minimal", EventCreate, ec, entityIs(""), member("event_id", `""`), member("title", `"Deploy"`), member("status", `"running"`), member("message", `"started"`)),
		bad("create/title absent", EventCreate, del(ec, "title"), apierr.TitleRequired, "title"),
		bad("create/title blank", EventCreate, set(ec, "title", `" "`), apierr.TitleRequired, "title"),
		bad("create/status absent", EventCreate, del(ec, "status"), apierr.StatusRequired, "status"),
		bad("create/message absent", EventCreate, del(ec, "message"), apierr.MessageRequired, "message"),
		bad("create/severity absent", EventCreate, del(ec, "severity"), apierr.SeverityRequired, "severity"),
		bad("create/event_time absent", EventCreate, del(ec, "event_time"), apierr.EventTimeRequired, "event_time"),
		bad("create/event_id forbidden", EventCreate, set(ec, "event_id", `"evt-1"`), apierr.EventIDForbiddenOnCreate, "event_id"),
		bad("create/empty event_id forbidden", EventCreate, set(ec, "event_id", `""`), apierr.EventIDForbiddenOnCreate, "event_id"),

		// Route-required fields of /event/update and /event/close.
		ok("update/minimal", EventUpdate, eu, entityIs("evt-1"), member("event_id", `"evt-1"`), absent("title")),
		ok("close/minimal", EventClose, ecl, entityIs("evt-1"), member("event_id", `"evt-1"`)),
		bad("update/event_id absent", EventUpdate, del(eu, "event_id"), apierr.EventIDRequired, "event_id"),
		bad("update/event_id blank", EventUpdate, set(eu, "event_id", `"  "`), apierr.EventIDRequired, "event_id"),
		bad("close/event_id absent", EventClose, del(ecl, "event_id"), apierr.EventIDRequired, "event_id"),
		bad("update/status absent", EventUpdate, del(eu, "status"), apierr.StatusRequired, "status"),
		bad("close/status absent", EventClose, del(ecl, "status"), apierr.StatusRequired, "status"),
		bad("update/message absent", EventUpdate, del(eu, "message"), apierr.MessageRequired, "message"),
		bad("close/message absent", EventClose, del(ecl, "message"), apierr.MessageRequired, "message"),
		bad("update/severity absent", EventUpdate, del(eu, "severity"), apierr.SeverityRequired, "severity"),
		bad("close/severity absent", EventClose, del(ecl, "severity"), apierr.SeverityRequired, "severity"),
		bad("update/event_time absent", EventUpdate, del(eu, "event_time"), apierr.EventTimeRequired, "event_time"),
		// The Android app closes an event with no event_time: it happened
		// when the gateway got it, and its ended_at then.
		ok("close/event_time absent is now", EventClose, del(ecl, "event_time"), member("event_time", strconv.FormatInt(testNow, 10)), member("ended_at", strconv.FormatInt(testNow, 10))),

		// title: optional on update and close (changes the title).
		ok("update/title changes", EventUpdate, set(eu, "title", `" Deploy v2 "`), member("title", `"Deploy v2"`)),
		ok("close/title changes", EventClose, set(ecl, "title", `"Deploy v2"`), member("title", `"Deploy v2"`)),
		bad("close/title blank", EventClose, set(ecl, "title", `""`), apierr.TitleRequired, "title"),

		// status: non-empty, <= 24 chars.
		ok("status/24 chars", EventUpdate, set(eu, "status", chars(24)), member("status", chars(24))),
		ok("status/trimmed", EventUpdate, set(eu, "status", `" failed "`), member("status", `"failed"`)),
		bad("status/25 chars", EventUpdate, set(eu, "status", chars(25)), apierr.StatusTooLong, "status"),
		bad("status/blank", EventClose, set(ecl, "status", `"  "`), apierr.StatusRequired, "status"),

		// message: non-empty, <= 512 chars.
		ok("message/512 chars", EventCreate, set(ec, "message", chars(512))),
		bad("message/513 chars", EventCreate, set(ec, "message", chars(513)), apierr.MessageTooLong, "message"),
		bad("message/empty", EventUpdate, set(eu, "message", `""`), apierr.MessageRequired, "message"),

		// severity: exactly critical, high, normal or low.
		ok("severity/critical", EventCreate, set(ec, "severity", `"critical"`), member("severity", `"critical"`)),
		ok("severity/high", EventUpdate, set(eu, "severity", `"high"`), member("severity", `"high"`)),
		ok("severity/normal", EventClose, set(ecl, "severity", `"normal"`), member("severity", `"normal"`)),
		ok("severity/low", EventCreate, set(ec, "severity", `"low"`), member("severity", `"low"`)),
		ok("severity/trimmed", EventCreate, set(ec, "severity", `" high "`), member("severity", `"high"`)),
		// In any letter case, stored lower-cased (PushGo's normalize_event_severity).
		ok("severity/capitalised", EventCreate, set(ec, "severity", `" High "`), member("severity", `"high"`)),
		bad("severity/unknown", EventUpdate, set(eu, "severity", `"urgent"`), apierr.InvalidSeverity, "severity"),
		bad("severity/empty", EventClose, set(ecl, "severity", `""`), apierr.InvalidSeverity, "severity"),
		bad("severity/null", EventCreate, set(ec, "severity", `null`), apierr.SeverityRequired, "severity"),

		// started_at: create only, defaults to event_time.
		ok("started_at/defaults to event_time", EventCreate, ec, member("started_at", `1713750000000`), absent("ended_at")),
		ok("started_at/given on create", EventCreate, set(ec, "started_at", `1713740000`), member("started_at", `1713740000000`)),
		ok("started_at/not set on update", EventUpdate, eu, absent("started_at"), absent("ended_at")),
		bad("started_at/on update", EventUpdate, set(eu, "started_at", `1713750000000`), apierr.EventTemporalFieldsForbiddenOnUpdate, "started_at"),
		bad("started_at/on close", EventClose, set(ecl, "started_at", `1713750000000`), apierr.StartedAtForbiddenOnClose, "started_at"),

		// ended_at: close only, defaults to event_time.
		ok("ended_at/defaults to event_time", EventClose, ecl, member("ended_at", `1713750600000`), absent("started_at")),
		ok("ended_at/given on close", EventClose, set(ecl, "ended_at", `"1713750700"`), member("ended_at", `1713750700000`)),
		bad("ended_at/on create", EventCreate, set(ec, "ended_at", `1713750000000`), apierr.EndedAtForbiddenOnCreate, "ended_at"),
		bad("ended_at/on update", EventUpdate, set(eu, "ended_at", `1713750000000`), apierr.EventTemporalFieldsForbiddenOnUpdate, "ended_at"),

		// thing_id: optional link to a Thing.
		ok("thing_id/link", EventCreate, set(ec, "thing_id", `" 3b7fd2e87d7d4d6d9c7f3a318ac21f02 "`), thingIs("3b7fd2e87d7d4d6d9c7f3a318ac21f02"), member("thing_id", `"3b7fd2e87d7d4d6d9c7f3a318ac21f02"`)),
		ok("thing_id/absent", EventUpdate, eu, thingIs(""), absent("thing_id")),
		bad("thing_id/invalid", EventCreate, set(ec, "thing_id", `"nas 1"`), apierr.InvalidThingID, "thing_id"),
		bad("thing_id/empty", EventClose, set(ecl, "thing_id", `""`), apierr.InvalidThingID, "thing_id"),
	})
}

// TestEventCheckOrder pins which error wins when several apply.
func TestEventCheckOrder(t *testing.T) {
	runRuleCases(t, []ruleCase{
		bad("channel_id before password", EventCreate, `{"title":"x"}`, apierr.ChannelIDRequired, "channel_id"),
		bad("password before op_id", EventCreate, `{"channel_id":"`+cid+`","op_id":"a b"}`, apierr.PasswordRequired, "password"),
		bad("op_id before ids", EventCreate, set(eventCreateBody, "op_id", `""`, "event_id", `"x"`), apierr.InvalidOpID, "op_id"),
		bad("ids before required fields", EventUpdate, del(eventUpdateBody, "event_id", "status"), apierr.EventIDRequired, "event_id"),
		bad("required fields in order", EventCreate, del(eventCreateBody, "title", "status", "message", "severity", "event_time"), apierr.TitleRequired, "title"),
		bad("required before optional", EventCreate, set(del(eventCreateBody, "event_time"), "tags", `[""]`), apierr.EventTimeRequired, "event_time"),
	})
}

// TestValidateNeverPanicsOnNil covers hand-built requests: nil request and
// wrong operation are errors, not panics.
func TestValidateNeverPanicsOnNil(t *testing.T) {
	if _, err := ValidateEvent(EventCreate, nil, testNow); err == nil || err.Code != apierr.InvalidRequestBody {
		t.Errorf("nil event request: %v", err)
	}
	if _, err := ValidateThing(ThingCreate, nil, testNow); err == nil || err.Code != apierr.InvalidRequestBody {
		t.Errorf("nil thing request: %v", err)
	}
	if _, err := ValidateMessage(nil, testNow); err == nil || err.Code != apierr.InvalidRequestBody {
		t.Errorf("nil message request: %v", err)
	}
	if _, err := ValidateEvent(ThingCreate, &EventRequest{}, testNow); err == nil || err.Code != apierr.InternalError {
		t.Errorf("thing op on event validator: %v", err)
	}
	if _, err := ValidateThing(EventCreate, &ThingRequest{}, testNow); err == nil || err.Code != apierr.InternalError {
		t.Errorf("event op on thing validator: %v", err)
	}
	if _, err := ValidateChannelCreate(nil); err == nil {
		t.Error("nil channel create accepted")
	}
	if _, err := ValidateChannelRename(nil); err == nil {
		t.Error("nil channel rename accepted")
	}
}
