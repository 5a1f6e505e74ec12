package ops

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestThingRules covers spec §5, route by route.
func TestThingRules(t *testing.T) {
	tc, tu, ta, td := thingCreateBody, thingUpdateBody, thingArchiveBody, thingDeleteBody
	runRuleCases(t, []ruleCase{
		// Route-required fields.
		ok("create/minimal", ThingCreate, tc, entityIs(""), thingIs(""), member("thing_id", `""`), absent("title")),
		ok("update/minimal", ThingUpdate, tu, entityIs("nas-1"), thingIs("nas-1"), member("thing_id", `"nas-1"`)),
		ok("archive/minimal", ThingArchive, ta, entityIs("nas-1"), thingIs("nas-1")),
		ok("delete/minimal", ThingDelete, td, entityIs("nas-1"), thingIs("nas-1")),
		bad("create/observed_at absent", ThingCreate, del(tc, "observed_at"), apierr.ObservedAtRequired, "observed_at"),
		bad("update/observed_at absent", ThingUpdate, del(tu, "observed_at"), apierr.ObservedAtRequired, "observed_at"),
		bad("archive/observed_at absent", ThingArchive, del(ta, "observed_at"), apierr.ObservedAtRequired, "observed_at"),
		bad("delete/observed_at absent", ThingDelete, del(td, "observed_at"), apierr.ObservedAtRequired, "observed_at"),
		bad("update/thing_id absent", ThingUpdate, del(tu, "thing_id"), apierr.ThingIDRequired, "thing_id"),
		bad("archive/thing_id absent", ThingArchive, del(ta, "thing_id"), apierr.ThingIDRequired, "thing_id"),
		bad("delete/thing_id absent", ThingDelete, del(td, "thing_id"), apierr.ThingIDRequired, "thing_id"),
		bad("delete/thing_id blank", ThingDelete, set(td, "thing_id", `" "`), apierr.ThingIDRequired, "thing_id"),
		bad("create/thing_id forbidden", ThingCreate, set(tc, "thing_id", `"nas-1"`), apierr.ThingIDForbiddenOnCreate, "thing_id"),
		bad("archive/thing_id invalid", ThingArchive, set(ta, "thing_id", `"nas#1"`), apierr.InvalidThingID, "thing_id"),

		// title: recommended on create, never required.
		ok("title/on create", ThingCreate, set(tc, "title", `" Home NAS "`), member("title", `"Home NAS"`)),
		ok("title/on update", ThingUpdate, set(tu, "title", `"NAS"`), member("title", `"NAS"`)),
		bad("title/too long on update", ThingUpdate, set(tu, "title", q(strings.Repeat("t", 257))), apierr.TitleTooLong, "title"),

		// primary_image: optional URL <= 2048 chars.
		ok("primary_image/trimmed", ThingCreate, set(tc, "primary_image", `" https://x/nas.png "`), member("primary_image", `"https://x/nas.png"`)),
		ok("primary_image/2048 chars", ThingUpdate, set(tu, "primary_image", q(strings.Repeat("p", 2048)))),
		bad("primary_image/2049 chars", ThingUpdate, set(tu, "primary_image", q(strings.Repeat("p", 2049))), apierr.PrimaryImageInvalid, "primary_image"),
		bad("primary_image/blank", ThingCreate, set(tc, "primary_image", `" "`), apierr.PrimaryImageInvalid, "primary_image"),

		// created_at: create only, defaults to observed_at.
		ok("created_at/defaults to observed_at", ThingCreate, tc, member("created_at", `1713750000000`), absent("deleted_at")),
		ok("created_at/given", ThingCreate, set(tc, "created_at", `1713000000`), member("created_at", `1713000000000`)),
		ok("created_at/not set on update", ThingUpdate, tu, absent("created_at"), absent("deleted_at")),
		bad("created_at/on update", ThingUpdate, set(tu, "created_at", `1713000000`), apierr.CreatedAtForbiddenOnUpdate, "created_at"),
		bad("created_at/on archive", ThingArchive, set(ta, "created_at", `1713000000`), apierr.CreatedAtForbiddenOnUpdate, "created_at"),
		bad("created_at/on delete", ThingDelete, set(td, "created_at", `1713000000`), apierr.CreatedAtForbiddenOnUpdate, "created_at"),

		// deleted_at: delete only, defaults to observed_at.
		ok("deleted_at/defaults to observed_at", ThingDelete, td, member("deleted_at", `1713751800000`), absent("created_at")),
		ok("deleted_at/given", ThingDelete, set(td, "deleted_at", `"1713751900"`), member("deleted_at", `1713751900000`)),
		bad("deleted_at/on create", ThingCreate, set(tc, "deleted_at", `1713751800`), apierr.DeletedAtForbiddenOnUpdate, "deleted_at"),
		bad("deleted_at/on update", ThingUpdate, set(tu, "deleted_at", `1713751800`), apierr.DeletedAtForbiddenOnUpdate, "deleted_at"),
		bad("deleted_at/on archive", ThingArchive, set(ta, "deleted_at", `1713751800`), apierr.DeletedAtForbiddenOnUpdate, "deleted_at"),

		// external_ids: keys [A-Za-z0-9_:.-] <= 64 bytes, lower-cased; values
		// trimmed non-empty strings <= 256 bytes, or null.
		ok("external_ids/normalised", ThingCreate, set(tc, "external_ids", `{"GitHub":" pushgo/gw ","aws:ec2.Instance-id_1":"i-1","old":null}`),
			member("external_ids", `{"aws:ec2.instance-id_1":"i-1","github":"pushgo/gw","old":null}`)),
		ok("external_ids/64 byte key", ThingUpdate, set(tu, "external_ids", `{`+q(strings.Repeat("k", 64))+`:"v"}`)),
		ok("external_ids/256 byte value", ThingUpdate, set(tu, "external_ids", `{"k":`+q(strings.Repeat("v", 256))+`}`)),
		ok("external_ids/null is absent", ThingUpdate, set(tu, "external_ids", `null`), absent("external_ids")),
		ok("external_ids/empty object", ThingUpdate, set(tu, "external_ids", `{}`), member("external_ids", `{}`)),
		bad("external_ids/bad key char", ThingCreate, set(tc, "external_ids", `{"git hub":"x"}`), apierr.ExternalIDsKeyInvalid, "external_ids"),
		bad("external_ids/slash in key", ThingCreate, set(tc, "external_ids", `{"a/b":"x"}`), apierr.ExternalIDsKeyInvalid, "external_ids"),
		bad("external_ids/empty key", ThingCreate, set(tc, "external_ids", `{"":"x"}`), apierr.ExternalIDsKeyInvalid, "external_ids"),
		bad("external_ids/65 byte key", ThingUpdate, set(tu, "external_ids", `{`+q(strings.Repeat("k", 65))+`:"v"}`), apierr.ExternalIDsKeyInvalid, "external_ids"),
		bad("external_ids/keys equal after lower-casing", ThingCreate, set(tc, "external_ids", `{"GitHub":"a","github":"b"}`), apierr.ExternalIDsKeyInvalid, "external_ids.github"),
		bad("external_ids/number value", ThingCreate, set(tc, "external_ids", `{"k":1}`), apierr.ExternalIDsValueInvalid, "external_ids.k"),
		bad("external_ids/object value", ThingCreate, set(tc, "external_ids", `{"k":{}}`), apierr.ExternalIDsValueInvalid, "external_ids.k"),
		bad("external_ids/blank value", ThingCreate, set(tc, "external_ids", `{"k":"  "}`), apierr.ExternalIDsValueInvalid, "external_ids.k"),
		bad("external_ids/257 byte value", ThingUpdate, set(tu, "external_ids", `{"k":`+q(strings.Repeat("v", 257))+`}`), apierr.ExternalIDsValueInvalid, "external_ids.k"),
		bad("external_ids/not an object", ThingCreate, set(tc, "external_ids", `["a"]`), apierr.ExternalIDsValueInvalid, "external_ids"),

		// location_type + location_value: both or neither; value per type.
		ok("location/none", ThingCreate, tc, absent("location_type"), absent("location_value")),
		ok("location/physical kept as sent", ThingCreate, set(tc, "location_type", `"physical"`, "location_value", `" Home / Living Room "`), member("location_type", `"physical"`), member("location_value", `"Home / Living Room"`)),
		ok("location/physical 256 chars", ThingCreate, set(tc, "location_type", `"physical"`, "location_value", q(strings.Repeat("é", 256)))),
		ok("location/geo normalised", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `" 37.5665 , 126.978"`), member("location_value", `"37.566500,126.978000"`)),
		ok("location/geo bounds", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"-90,180"`), member("location_value", `"-90.000000,180.000000"`)),
		ok("location/geo signed", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"+1.5,-0.0000001"`), member("location_value", `"1.500000,0.000000"`)),
		ok("location/cloud", ThingCreate, set(tc, "location_type", `"cloud"`, "location_value", `"AWS:us-east-1"`), member("location_value", `"aws:us-east-1"`)),
		ok("location/cloud with zone", ThingCreate, set(tc, "location_type", `"cloud"`, "location_value", `"gcp:europe-west3:europe-west3-a"`), member("location_value", `"gcp:europe-west3:europe-west3-a"`)),
		ok("location/datacenter site", ThingCreate, set(tc, "location_type", `"datacenter"`, "location_value", `"FRA1"`), member("location_value", `"fra1"`)),
		ok("location/datacenter rack", ThingCreate, set(tc, "location_type", `"datacenter"`, "location_value", `"fra1:room.2:R_07"`), member("location_value", `"fra1:room.2:r_07"`)),
		ok("location/logical", ThingCreate, set(tc, "location_type", `"logical"`, "location_value", `"Prod/API/eu"`), member("location_value", `"prod/api/eu"`)),
		ok("location/logical one segment", ThingCreate, set(tc, "location_type", `"logical"`, "location_value", `"prod"`), member("location_value", `"prod"`)),
		bad("location/type without value", ThingCreate, set(tc, "location_type", `"geo"`), apierr.LocationIncomplete, "location_value"),
		bad("location/value without type", ThingCreate, set(tc, "location_value", `"1,2"`), apierr.LocationIncomplete, "location_type"),
		bad("location/unknown type", ThingCreate, set(tc, "location_type", `"planet"`, "location_value", `"earth"`), apierr.LocationTypeInvalid, "location_type"),
		bad("location/type case", ThingCreate, set(tc, "location_type", `"Geo"`, "location_value", `"1,2"`), apierr.LocationTypeInvalid, "location_type"),
		bad("location/physical blank", ThingCreate, set(tc, "location_type", `"physical"`, "location_value", `" "`), apierr.LocationValueInvalid, "location_value"),
		bad("location/physical 257 chars", ThingCreate, set(tc, "location_type", `"physical"`, "location_value", q(strings.Repeat("é", 257))), apierr.LocationValueInvalid, "location_value"),
		bad("location/geo lat out of range", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"90.0001,0"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/geo lng out of range", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"0,-180.5"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/geo one number", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"37.5"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/geo three numbers", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"1,2,3"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/geo NaN", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"NaN,0"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/geo exponent", ThingCreate, set(tc, "location_type", `"geo"`, "location_value", `"1e1,0"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/cloud no region", ThingCreate, set(tc, "location_type", `"cloud"`, "location_value", `"aws"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/cloud four parts", ThingCreate, set(tc, "location_type", `"cloud"`, "location_value", `"aws:a:b:c"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/cloud 65 char token", ThingCreate, set(tc, "location_type", `"cloud"`, "location_value", q("aws:"+strings.Repeat("r", 65))), apierr.LocationValueInvalid, "location_value"),
		bad("location/datacenter four parts", ThingCreate, set(tc, "location_type", `"datacenter"`, "location_value", `"a:b:c:d"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/datacenter empty token", ThingCreate, set(tc, "location_type", `"datacenter"`, "location_value", `"a::c"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/logical empty segment", ThingCreate, set(tc, "location_type", `"logical"`, "location_value", `"prod//api"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/logical space", ThingCreate, set(tc, "location_type", `"logical"`, "location_value", `"prod/my api"`), apierr.LocationValueInvalid, "location_value"),
		bad("location/logical empty", ThingCreate, set(tc, "location_type", `"logical"`, "location_value", `""`), apierr.LocationValueInvalid, "location_value"),
	})
}
