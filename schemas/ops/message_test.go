package ops

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestMessageRules covers spec §6.
func TestMessageRules(t *testing.T) {
	mc := messageBody
	ms := func(v int64) string { return strconv.FormatInt(v, 10) }
	runRuleCases(t, []ruleCase{
		ok("minimal", MessageCreate, mc, entityIs(""), thingIs(""), member("message_id", `""`), member("title", `"Disk failed"`)),

		// title: required, non-empty after trim, <= 256.
		ok("title/trimmed", MessageCreate, set(mc, "title", `" Disk failed "`), member("title", `"Disk failed"`)),
		ok("title/256 chars", MessageCreate, set(mc, "title", q(strings.Repeat("字", 256)))),
		bad("title/absent", MessageCreate, del(mc, "title"), apierr.TitleRequired, "title"),
		bad("title/blank", MessageCreate, set(mc, "title", `"  "`), apierr.TitleRequired, "title"),
		bad("title/257 chars", MessageCreate, set(mc, "title", q(strings.Repeat("字", 257))), apierr.TitleTooLong, "title"),

		// body: optional Markdown, kept as sent; blank is absent.
		ok("body/kept as sent", MessageCreate, set(mc, "body", `"  - disk **2**\n"`), member("body", `"  - disk **2**\n"`)),
		ok("body/blank is absent", MessageCreate, set(mc, "body", `" \n "`), absent("body")),
		bad("body/not a string", MessageCreate, set(mc, "body", `["x"]`), apierr.InvalidJSONData, "body"),

		// severity: optional, default normal.
		ok("severity/default normal", MessageCreate, mc, member("severity", `"normal"`)),
		ok("severity/critical", MessageCreate, set(mc, "severity", `"critical"`), member("severity", `"critical"`)),
		ok("severity/low", MessageCreate, set(mc, "severity", `"low"`), member("severity", `"low"`)),
		bad("severity/unknown", MessageCreate, set(mc, "severity", `"warning"`), apierr.InvalidSeverity, "severity"),
		bad("severity/empty", MessageCreate, set(mc, "severity", `""`), apierr.InvalidSeverity, "severity"),

		// thing_id: optional link; then occurred_at is required.
		ok("thing_id/with occurred_at", MessageCreate, set(mc, "thing_id", `"nas-1"`, "occurred_at", `1713749000`), thingIs("nas-1"), member("thing_id", `"nas-1"`), member("occurred_at", `1713749000000`)),
		bad("thing_id/without occurred_at", MessageCreate, set(mc, "thing_id", `"nas-1"`), apierr.OccurredAtRequired, "occurred_at"),
		bad("thing_id/invalid", MessageCreate, set(mc, "thing_id", `"nas 1"`), apierr.InvalidThingID, "thing_id"),

		// occurred_at: default now.
		ok("occurred_at/defaults to now", MessageCreate, mc, member("occurred_at", ms(testNow))),
		ok("occurred_at/given", MessageCreate, set(mc, "occurred_at", `"1713749000123"`), member("occurred_at", `1713749000123`)),
		bad("occurred_at/float", MessageCreate, set(mc, "occurred_at", `1.5`), apierr.InvalidTimestamp, "occurred_at"),

		// url: optional, empty ignored, else absolute http(s) <= 2048.
		ok("url/https", MessageCreate, set(mc, "url", `" https://nas.local:5000/disks?id=2 "`), member("url", `"https://nas.local:5000/disks?id=2"`)),
		ok("url/http", MessageCreate, set(mc, "url", `"HTTP://example.com"`), member("url", `"HTTP://example.com"`)),
		ok("url/empty ignored", MessageCreate, set(mc, "url", `""`), absent("url")),
		ok("url/4096 chars", MessageCreate, set(mc, "url", q("https://x.io/"+strings.Repeat("p", 4096-13)))),
		// What the apps open besides http(s) (PushGo takes any text).
		ok("url/mailto", MessageCreate, set(mc, "url", `"mailto:ops@example.com"`), member("url", `"mailto:ops@example.com"`)),
		ok("url/tel", MessageCreate, set(mc, "url", `"tel:+15551234"`), member("url", `"tel:+15551234"`)),
		ok("url/app scheme", MessageCreate, set(mc, "url", `"weixin://dl/chat"`), member("url", `"weixin://dl/chat"`)),
		ok("url/bare host", MessageCreate, set(mc, "url", `"status.example.com/disks"`), member("url", `"status.example.com/disks"`)),
		bad("url/4097 chars", MessageCreate, set(mc, "url", q("https://x.io/"+strings.Repeat("p", 4097-13))), apierr.URLInvalid, "url"),
		bad("url/data", MessageCreate, set(mc, "url", `"DATA:text/html,x"`), apierr.URLInvalid, "url"),
		bad("url/control character", MessageCreate, set(mc, "url", `"https://x.io/a\u0007b"`), apierr.URLInvalid, "url"),
		bad("url/relative", MessageCreate, set(mc, "url", `"/disks/2"`), apierr.URLInvalid, "url"),
		bad("url/other scheme", MessageCreate, set(mc, "url", `"javascript:alert(1)"`), apierr.URLInvalid, "url"),
		bad("url/no host", MessageCreate, set(mc, "url", `"https:///path"`), apierr.URLInvalid, "url"),
		bad("url/unparsable", MessageCreate, set(mc, "url", `"http://[::1"`), apierr.URLInvalid, "url"),

		// ttl: optional absolute expiry, after now, capped at now + 30 days.
		ok("ttl/absent", MessageCreate, mc, absent("ttl")),
		ok("ttl/one ms ahead", MessageCreate, set(mc, "ttl", ms(testNow+1)), member("ttl", ms(testNow+1))),
		ok("ttl/in seconds", MessageCreate, set(mc, "ttl", ms(testNow/1000+3600)), member("ttl", ms(testNow+3600_000))),
		ok("ttl/30 days kept", MessageCreate, set(mc, "ttl", ms(testNow+30*day)), member("ttl", ms(testNow+30*day))),
		ok("ttl/capped at 30 days", MessageCreate, set(mc, "ttl", ms(testNow+365*day)), member("ttl", ms(testNow+30*day))),
		bad("ttl/now", MessageCreate, set(mc, "ttl", ms(testNow)), apierr.TTLExpired, "ttl"),
		bad("ttl/past", MessageCreate, set(mc, "ttl", ms(testNow/1000-60)), apierr.TTLExpired, "ttl"),
		// With an op_id the request may be the retry of a message stored
		// before its ttl passed: valid, refused by the writer only if new.
		ok("ttl/past with an op_id", MessageCreate, set(mc, "ttl", ms(testNow/1000-60), "op_id", `"m-1"`), refusedIfNew(apierr.TTLExpired)),
		ok("ttl/ahead with an op_id", MessageCreate, set(mc, "ttl", ms(testNow+1), "op_id", `"m-1"`), refusedIfNew("")),
		bad("ttl/not a timestamp", MessageCreate, set(mc, "ttl", `"1h"`), apierr.InvalidTimestamp, "ttl"),
	})
}
