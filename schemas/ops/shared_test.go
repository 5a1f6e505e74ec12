package ops

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestConventions covers spec §1: strict decoding, identifiers, credentials,
// op_id, ciphertext and timestamps. Each rule has accepted and rejected rows.
func TestConventions(t *testing.T) {
	ec := eventCreateBody
	long := func(n int) string { return strings.Repeat("a", n) }
	runRuleCases(t, []ruleCase{
		// Strict decoding (wire.Decode, before validation).
		ok("decode/valid body", EventCreate, ec),
		bad("decode/empty body", EventCreate, ``, apierr.InvalidRequestBody, ""),
		bad("decode/malformed", EventCreate, `{"title":`, apierr.InvalidJSONSyntax, ""),
		bad("decode/not an object", EventCreate, `["a"]`, apierr.InvalidJSONData, ""),
		bad("decode/unknown member", EventCreate, set(ec, "bogus", `1`), apierr.InvalidJSONData, "bogus"),
		bad("decode/case variant key", EventCreate, set(ec, "Title", `"x"`), apierr.InvalidJSONData, "Title"),
		bad("decode/duplicate member", EventCreate, `{"title":"a","title":"b"}`, apierr.InvalidJSONData, "title"),
		bad("decode/wrong type", EventCreate, set(ec, "status", `5`), apierr.InvalidJSONData, "status"),
		bad("decode/trailing data", EventCreate, ec+` {}`, apierr.InvalidJSONSyntax, ""),
		bad("decode/unknown member on thing", ThingCreate, set(thingCreateBody, "event_id", `"x"`), apierr.InvalidJSONData, "event_id"),
		bad("decode/unknown member on message", MessageCreate, set(messageBody, "message", `"x"`), apierr.InvalidJSONData, "message"),

		// channel_id: required, Crockford base32, case-insensitive, O->0, I/L->1.
		ok("channel_id/canonical", EventCreate, ec, channelIs(cid)),
		ok("channel_id/lower case", EventCreate, set(ec, "channel_id", q(strings.ToLower(cid))), channelIs(cid)),
		ok("channel_id/O I L mapped", EventCreate, set(ec, "channel_id", `"OIARZ3NDEKTSV4RRFFQ69G5FAL"`), channelIs("01ARZ3NDEKTSV4RRFFQ69G5FA1")),
		ok("channel_id/trimmed", EventCreate, set(ec, "channel_id", q(" "+cid+"\t")), channelIs(cid)),
		ok("channel_id/on thing", ThingCreate, set(thingCreateBody, "channel_id", q(strings.ToLower(cid))), channelIs(cid)),
		ok("channel_id/on message", MessageCreate, set(messageBody, "channel_id", q(strings.ToLower(cid))), channelIs(cid)),
		bad("channel_id/absent", EventCreate, del(ec, "channel_id"), apierr.ChannelIDRequired, "channel_id"),
		bad("channel_id/null", EventCreate, set(ec, "channel_id", `null`), apierr.ChannelIDRequired, "channel_id"),
		bad("channel_id/blank", EventCreate, set(ec, "channel_id", `"  "`), apierr.ChannelIDRequired, "channel_id"),
		bad("channel_id/too short", EventCreate, set(ec, "channel_id", q(cid[:25])), apierr.InvalidChannelID, "channel_id"),
		bad("channel_id/too long", EventCreate, set(ec, "channel_id", q(cid+"0")), apierr.InvalidChannelID, "channel_id"),
		bad("channel_id/letter U", EventCreate, set(ec, "channel_id", q("U"+cid[1:])), apierr.InvalidChannelID, "channel_id"),
		bad("channel_id/over 128 bits", EventCreate, set(ec, "channel_id", q("8"+cid[1:])), apierr.InvalidChannelID, "channel_id"),
		bad("channel_id/missing on thing", ThingUpdate, del(thingUpdateBody, "channel_id"), apierr.ChannelIDRequired, "channel_id"),
		bad("channel_id/missing on message", MessageCreate, del(messageBody, "channel_id"), apierr.ChannelIDRequired, "channel_id"),

		// password: required, trimmed, 8-128 bytes.
		ok("password/8 bytes", EventCreate, set(ec, "password", q(long(8))), passwordIs(long(8))),
		ok("password/128 bytes", EventCreate, set(ec, "password", q(long(128))), passwordIs(long(128))),
		ok("password/trimmed", EventCreate, set(ec, "password", q("  "+pw+"\n")), passwordIs(pw)),
		ok("password/bytes not chars", EventCreate, set(ec, "password", `"密码密码"`), passwordIs("密码密码")),
		bad("password/absent", EventCreate, del(ec, "password"), apierr.PasswordRequired, "password"),
		bad("password/blank", EventCreate, set(ec, "password", `"   "`), apierr.PasswordRequired, "password"),
		bad("password/7 bytes", EventCreate, set(ec, "password", q(long(7))), apierr.InvalidPassword, "password"),
		bad("password/7 bytes after trim", EventCreate, set(ec, "password", q("  "+long(7)+"  ")), apierr.InvalidPassword, "password"),
		bad("password/129 bytes", EventCreate, set(ec, "password", q(long(129))), apierr.InvalidPassword, "password"),
		bad("password/6 bytes of 2 chars", EventCreate, set(ec, "password", `"密码"`), apierr.InvalidPassword, "password"),
		bad("password/missing on thing", ThingCreate, del(thingCreateBody, "password"), apierr.PasswordRequired, "password"),
		bad("password/missing on message", MessageCreate, del(messageBody, "password"), apierr.PasswordRequired, "password"),

		// op_id: optional, trimmed, 1-128 of [A-Za-z0-9_:-].
		ok("op_id/absent", EventCreate, ec, opIDIs("")),
		ok("op_id/trimmed", EventCreate, set(ec, "op_id", `" op-20260422:001_a "`), opIDIs("op-20260422:001_a")),
		ok("op_id/128 chars", EventCreate, set(ec, "op_id", q(long(128))), opIDIs(long(128))),
		ok("op_id/on thing", ThingUpdate, set(thingUpdateBody, "op_id", `"t-1"`), opIDIs("t-1")),
		ok("op_id/on message", MessageCreate, set(messageBody, "op_id", `"m-1"`), opIDIs("m-1")),
		bad("op_id/129 chars", EventCreate, set(ec, "op_id", q(long(129))), apierr.InvalidOpID, "op_id"),
		bad("op_id/empty", EventCreate, set(ec, "op_id", `""`), apierr.InvalidOpID, "op_id"),
		bad("op_id/blank", EventCreate, set(ec, "op_id", `"  "`), apierr.InvalidOpID, "op_id"),
		bad("op_id/dot", EventCreate, set(ec, "op_id", `"op.1"`), apierr.InvalidOpID, "op_id"),
		bad("op_id/inner space", EventCreate, set(ec, "op_id", `"op 1"`), apierr.InvalidOpID, "op_id"),
		bad("op_id/bad on message", MessageCreate, set(messageBody, "op_id", `"op/1"`), apierr.InvalidOpID, "op_id"),

		// Entity ids: 1-64 of [A-Za-z0-9_:-], trimmed.
		ok("event_id/64 chars", EventUpdate, set(eventUpdateBody, "event_id", q(long(64))), entityIs(long(64))),
		ok("event_id/trimmed", EventUpdate, set(eventUpdateBody, "event_id", `" 8a1fc4b3d9f04fd2857f92f66f7cc5d1 "`), entityIs("8a1fc4b3d9f04fd2857f92f66f7cc5d1"), member("event_id", `"8a1fc4b3d9f04fd2857f92f66f7cc5d1"`)),
		bad("event_id/65 chars", EventUpdate, set(eventUpdateBody, "event_id", q(long(65))), apierr.InvalidEventID, "event_id"),
		bad("event_id/bad char", EventUpdate, set(eventUpdateBody, "event_id", `"evt.1"`), apierr.InvalidEventID, "event_id"),
		ok("thing_id/64 chars", ThingUpdate, set(thingUpdateBody, "thing_id", q(long(64))), entityIs(long(64)), thingIs(long(64))),
		bad("thing_id/65 chars", ThingUpdate, set(thingUpdateBody, "thing_id", q(long(65))), apierr.InvalidThingID, "thing_id"),
		bad("thing_id/bad char", ThingUpdate, set(thingUpdateBody, "thing_id", `"nas/1"`), apierr.InvalidThingID, "thing_id"),

		// ciphertext: optional, non-empty, <= 16 KiB, untouched.
		ok("ciphertext/absent", EventCreate, ec, absent("ciphertext")),
		ok("ciphertext/kept but for the white space around it", EventCreate, set(ec, "ciphertext", `" AbC+/= "`), member("ciphertext", `"AbC+/="`)),
		ok("ciphertext/16384 bytes", EventCreate, set(ec, "ciphertext", q(long(16384)))),
		ok("ciphertext/on thing", ThingCreate, set(thingCreateBody, "ciphertext", `"x"`), member("ciphertext", `"x"`)),
		ok("ciphertext/on message", MessageCreate, set(messageBody, "ciphertext", `"x"`), member("ciphertext", `"x"`)),
		bad("ciphertext/16385 bytes", EventCreate, set(ec, "ciphertext", q(long(16385))), apierr.CiphertextTooLong, "ciphertext"),
		bad("ciphertext/empty", EventCreate, set(ec, "ciphertext", `""`), apierr.InvalidCiphertext, "ciphertext"),
		bad("ciphertext/blank", EventCreate, set(ec, "ciphertext", `" \n"`), apierr.InvalidCiphertext, "ciphertext"),
		ok("ciphertext/trimmed", EventCreate, set(ec, "ciphertext", `" QUJD\n"`), member("ciphertext", `"QUJD"`)),
		bad("ciphertext/empty on thing", ThingCreate, set(thingCreateBody, "ciphertext", `""`), apierr.InvalidCiphertext, "ciphertext"),
		bad("ciphertext/too long on message", MessageCreate, set(messageBody, "ciphertext", q(long(16385))), apierr.CiphertextTooLong, "ciphertext"),

		// Timestamps: integer or digit string; seconds are multiplied by 1000.
		ok("timestamp/milliseconds", EventCreate, set(ec, "event_time", `1713750000123`), member("event_time", `1713750000123`)),
		ok("timestamp/seconds", EventCreate, set(ec, "event_time", `1713750000`), member("event_time", `1713750000000`)),
		ok("timestamp/digit string", EventCreate, set(ec, "event_time", `"1713750000"`), member("event_time", `1713750000000`)),
		ok("timestamp/ms digit string", EventCreate, set(ec, "event_time", `"1713750000123"`), member("event_time", `1713750000123`)),
		ok("timestamp/largest seconds value", EventCreate, set(ec, "event_time", `253402300799`), member("event_time", `253402300799000`)),
		ok("timestamp/first ms value", EventCreate, set(ec, "event_time", `1000000000000`), member("event_time", `1000000000000`)),
		ok("timestamp/zero", EventCreate, set(ec, "event_time", `0`), member("event_time", `0`)),
		ok("timestamp/seconds on thing", ThingCreate, set(thingCreateBody, "observed_at", `1713750000`), member("observed_at", `1713750000000`)),
		bad("timestamp/float", EventCreate, set(ec, "event_time", `1713750000.5`), apierr.InvalidTimestamp, "event_time"),
		bad("timestamp/negative", EventCreate, set(ec, "event_time", `-1`), apierr.InvalidTimestamp, "event_time"),
		bad("timestamp/text", EventCreate, set(ec, "event_time", `"yesterday"`), apierr.InvalidTimestamp, "event_time"),
		bad("timestamp/exponent", EventCreate, set(ec, "event_time", `1.7e12`), apierr.InvalidTimestamp, "event_time"),
		bad("timestamp/after year 9999", EventCreate, set(ec, "event_time", `253402300800000`), apierr.InvalidTimestamp, "event_time"),
		bad("timestamp/bool", ThingCreate, set(thingCreateBody, "observed_at", `true`), apierr.InvalidTimestamp, "observed_at"),
	})
}

// TestSharedValueRules covers the shared value table of spec §1 (title,
// description, tags, images, attrs, metadata) on every kind of route.
func TestSharedValueRules(t *testing.T) {
	ec, tc, mc := eventCreateBody, thingCreateBody, messageBody
	runes := func(r string, n int) string { return q(strings.Repeat(r, n)) }
	items := func(item string, n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(q(item)+",", n), ",") + "]"
	}
	runRuleCases(t, []ruleCase{
		// title: trimmed, <= 256 characters.
		ok("title/trimmed", EventCreate, set(ec, "title", `"  Deploy  "`), member("title", `"Deploy"`)),
		ok("title/256 chars", EventCreate, set(ec, "title", runes("é", 256))),
		ok("title/256 chars on thing", ThingCreate, set(tc, "title", runes("é", 256))),
		bad("title/257 chars", EventCreate, set(ec, "title", runes("é", 257)), apierr.TitleTooLong, "title"),
		bad("title/257 chars on thing", ThingCreate, set(tc, "title", runes("a", 257)), apierr.TitleTooLong, "title"),
		bad("title/257 chars on update", EventUpdate, set(eventUpdateBody, "title", runes("a", 257)), apierr.TitleTooLong, "title"),
		bad("title/blank on thing", ThingCreate, set(tc, "title", `" "`), apierr.TitleRequired, "title"),

		// description: trimmed; empty counts as absent.
		ok("description/trimmed", EventCreate, set(ec, "description", `" Primary storage "`), member("description", `"Primary storage"`)),
		ok("description/empty is absent", EventCreate, set(ec, "description", `""`), absent("description")),
		ok("description/blank is absent", ThingCreate, set(tc, "description", `"  "`), absent("description")),
		bad("description/not a string", ThingCreate, set(tc, "description", `{}`), apierr.InvalidJSONData, "description"),

		// tags: <= 32 items, each trimmed, non-empty, <= 64 chars; dedup keeps order.
		ok("tags/trim and dedup", EventCreate, set(ec, "tags", `[" nas ","home","nas","b"," home"]`), member("tags", `["nas","home","b"]`)),
		ok("tags/32 items", EventCreate, set(ec, "tags", list("t", 32)), member("tags", list("t", 32))),
		ok("tags/64 chars", EventCreate, set(ec, "tags", "["+runes("界", 64)+"]")),
		ok("tags/empty list kept", EventCreate, set(ec, "tags", `[]`), member("tags", `[]`)),
		ok("tags/absent", EventCreate, ec, absent("tags")),
		ok("tags/on thing", ThingCreate, set(tc, "tags", `["a","a"]`), member("tags", `["a"]`)),
		ok("tags/on message", MessageCreate, set(mc, "tags", `["a"," b"]`), member("tags", `["a","b"]`)),
		bad("tags/33 items", EventCreate, set(ec, "tags", list("t", 33)), apierr.TagsFormatInvalid, "tags"),
		bad("tags/33 items counted before dedup", EventCreate, set(ec, "tags", items("same", 33)), apierr.TagsFormatInvalid, "tags"),
		bad("tags/65 chars", EventCreate, set(ec, "tags", "["+runes("界", 65)+"]"), apierr.TagsFormatInvalid, "tags"),
		bad("tags/empty item", EventCreate, set(ec, "tags", `["a",""]`), apierr.TagsFormatInvalid, "tags"),
		bad("tags/blank item", ThingCreate, set(tc, "tags", `["  "]`), apierr.TagsFormatInvalid, "tags"),
		bad("tags/not strings", MessageCreate, set(mc, "tags", `[1]`), apierr.InvalidJSONData, "tags"),

		// images: <= 32 items, each trimmed, non-empty, <= 2048 chars; dedup.
		ok("images/trim and dedup", EventCreate, set(ec, "images", `[" https://x/a.png","https://x/a.png","https://x/b.png"]`), member("images", `["https://x/a.png","https://x/b.png"]`)),
		ok("images/32 items", ThingCreate, set(tc, "images", list("https://x/", 32))),
		ok("images/2048 chars", MessageCreate, set(mc, "images", "["+runes("i", 2048)+"]")),
		ok("images/empty list kept", ThingUpdate, set(thingUpdateBody, "images", `[]`), member("images", `[]`)),
		bad("images/33 items", ThingCreate, set(tc, "images", list("https://x/", 33)), apierr.ImagesFormatInvalid, "images"),
		bad("images/2049 chars", MessageCreate, set(mc, "images", "["+runes("i", 2049)+"]"), apierr.ImagesFormatInvalid, "images"),
		bad("images/empty item", EventCreate, set(ec, "images", `[""]`), apierr.ImagesFormatInvalid, "images"),

		// attrs: object patch, one level of nesting, no arrays.
		ok("attrs/scalars and null", EventCreate, set(ec, "attrs", `{ "s" : "v", "n": 0.75, "b": true, "gone": null }`), member("attrs", `{"s":"v","n":0.75,"b":true,"gone":null}`)),
		ok("attrs/one nested level", ThingCreate, set(tc, "attrs", `{"disk": {"used": 0.72, "temp": null, "ok": false}}`), member("attrs", `{"disk":{"used":0.72,"temp":null,"ok":false}}`)),
		ok("attrs/key order kept", EventCreate, set(ec, "attrs", `{"z":1,"a":2}`), member("attrs", `{"z":1,"a":2}`)),
		ok("attrs/null is absent", EventCreate, set(ec, "attrs", `null`), absent("attrs")),
		ok("attrs/empty object", EventUpdate, set(eventUpdateBody, "attrs", `{}`), member("attrs", `{}`)),
		bad("attrs/array value", EventCreate, set(ec, "attrs", `{"list":[1,2]}`), apierr.ExtensionObjectArraysUnsupported, "attrs.list"),
		bad("attrs/array in nested", ThingCreate, set(tc, "attrs", `{"disk":{"ids":[]}}`), apierr.ExtensionObjectArraysUnsupported, "attrs.disk.ids"),
		bad("attrs/empty key", EventCreate, set(ec, "attrs", `{"":1}`), apierr.ExtensionObjectKeyRequired, "attrs"),
		bad("attrs/blank key", ThingCreate, set(tc, "attrs", `{"ok":1,"   ":"x"}`), apierr.ExtensionObjectKeyRequired, "attrs"),
		bad("attrs/two levels of nesting", ThingCreate, set(tc, "attrs", `{"a":{"b":{"c":1}}}`), apierr.ExtensionObjectNestedObjectUnsupported, "attrs.a.b"),
		bad("attrs/whole array", EventCreate, set(ec, "attrs", `[1]`), apierr.AttrsInvalid, "attrs"),
		bad("attrs/string", EventCreate, set(ec, "attrs", `"x"`), apierr.AttrsInvalid, "attrs"),
		bad("attrs/number", ThingUpdate, set(thingUpdateBody, "attrs", `5`), apierr.AttrsInvalid, "attrs"),
		bad("attrs/number beyond a float64", EventCreate, set(ec, "attrs", `{"v":1e400}`), apierr.InvalidJSONData, "attrs.v"),
		bad("attrs/nested number beyond a float64", ThingCreate, set(tc, "attrs", `{"d":{"v":-2e308}}`), apierr.InvalidJSONData, "attrs.d.v"),
		ok("attrs/largest float64", ThingCreate, set(tc, "attrs", `{"v":1.7976931348623157e308}`), member("attrs", `{"v":1.7976931348623157e308}`)),

		// metadata: keys trimmed, non-empty, <= 64 bytes, unique; scalar values,
		// non-empty text, <= 512 bytes.
		ok("metadata/normalised", EventCreate, set(ec, "metadata", `{ " env " : " prod ", "n": 3, "b": false }`), member("metadata", `{"env":"prod","n":3,"b":false}`)),
		ok("metadata/64 byte key", ThingCreate, set(tc, "metadata", `{`+runes("k", 64)+`:"v"}`)),
		ok("metadata/512 byte value", MessageCreate, set(mc, "metadata", `{"k":`+runes("v", 512)+`}`)),
		ok("metadata/512 byte value trimmed", MessageCreate, set(mc, "metadata", `{"k":`+q(" "+strings.Repeat("v", 512)+" ")+`}`)),
		ok("metadata/null is absent", MessageCreate, set(mc, "metadata", `null`), absent("metadata")),
		ok("metadata/empty object", EventCreate, set(ec, "metadata", `{}`), member("metadata", `{}`)),
		bad("metadata/not an object", EventCreate, set(ec, "metadata", `"k=v"`), apierr.MetadataInvalid, "metadata"),
		bad("metadata/array", ThingCreate, set(tc, "metadata", `[]`), apierr.MetadataInvalid, "metadata"),
		bad("metadata/blank key", EventCreate, set(ec, "metadata", `{" ":"v"}`), apierr.MetadataKeyInvalid, "metadata"),
		bad("metadata/keys equal after trim", EventCreate, set(ec, "metadata", `{"k":"a"," k":"b"}`), apierr.MetadataKeyInvalid, "metadata.k"),
		bad("metadata/65 byte key", ThingCreate, set(tc, "metadata", `{`+runes("k", 65)+`:"v"}`), apierr.MetadataKeyTooLong, "metadata"),
		bad("metadata/22 char key of 66 bytes", ThingCreate, set(tc, "metadata", `{`+runes("界", 22)+`:"v"}`), apierr.MetadataKeyTooLong, "metadata"),
		bad("metadata/null value", EventCreate, set(ec, "metadata", `{"k":null}`), apierr.MetadataValueScalarRequired, "metadata.k"),
		bad("metadata/object value", EventCreate, set(ec, "metadata", `{"k":{}}`), apierr.MetadataValueScalarRequired, "metadata.k"),
		bad("metadata/array value", MessageCreate, set(mc, "metadata", `{"k":[1]}`), apierr.MetadataValueScalarRequired, "metadata.k"),
		bad("metadata/empty value", EventCreate, set(ec, "metadata", `{"k":""}`), apierr.MetadataValueInvalid, "metadata.k"),
		bad("metadata/blank value", EventCreate, set(ec, "metadata", `{"k":"  "}`), apierr.MetadataValueInvalid, "metadata.k"),
		bad("metadata/513 byte value", MessageCreate, set(mc, "metadata", `{"k":`+runes("v", 513)+`}`), apierr.MetadataValueTooLong, "metadata.k"),
		bad("metadata/number beyond a float64", MessageCreate, set(mc, "metadata", `{"k":1e999}`), apierr.InvalidJSONData, "metadata.k"),
		bad("metadata/513 byte number", MessageCreate, set(mc, "metadata", `{"k":0.`+strings.Repeat("9", 511)+`}`), apierr.MetadataValueTooLong, "metadata.k"),
	})
}
