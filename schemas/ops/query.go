package ops

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// messageRequestFromQuery maps GET /message parameters onto the POST body
// (spec §6), as strictly as wire.Decode treats JSON: unknown, repeated and
// non-UTF-8 parameters are rejected. Parameters are read in sorted order so
// the first error reported is stable. Only the value's form is checked
// here; the rules are validateMessage's, so GET and POST cannot drift.
func messageRequestFromQuery(q url.Values) (*MessageRequest, *apierr.Error) {
	r := &MessageRequest{}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vals := q[k]
		if len(vals) == 0 {
			continue
		}
		if len(vals) > 1 {
			return nil, apierr.Fieldf(apierr.InvalidQuery, safeName(k), "parameter given more than once")
		}
		v := vals[0]
		if !utf8.ValidString(v) {
			return nil, apierr.Fieldf(apierr.InvalidQuery, safeName(k), "value is not valid UTF-8")
		}
		if err := setQueryParam(r, k, v); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func setQueryParam(r *MessageRequest, k, v string) *apierr.Error {
	switch k {
	case "channel_id", "password", "title":
	default:
		// An optional parameter left blank is absent, as PushGo reads its
		// query (deserialize_empty_as_none): a form or a script that
		// sends every field (severity=&op_id=) was refused.
		if strings.TrimSpace(v) == "" {
			return nil
		}
	}
	switch k {
	case "channel_id":
		r.ChannelID = &v
	case "password":
		r.Password = &v
	case "op_id":
		r.OpID = &v
	case "thing_id":
		r.ThingID = &v
	case "title":
		r.Title = &v
	case "body":
		r.Body = &v
	case "severity":
		r.Severity = &v
	case "url":
		r.URL = &v
	case "ciphertext":
		r.Ciphertext = &v
	case "occurred_at", "ttl":
		ms, ok := wire.ParseMillis(v)
		if !ok {
			return apierr.Field(apierr.InvalidTimestamp, k)
		}
		if k == "ttl" {
			r.TTL = ptr(wire.Millis(ms))
		} else {
			r.OccurredAt = ptr(wire.Millis(ms))
		}
	case "images":
		r.Images = queryList(v)
	case "tags":
		r.Tags = queryList(v)
	case "metadata":
		if !jsontext.Value(v).IsValid() {
			return apierr.Fieldf(apierr.MetadataInvalid, "metadata", "not valid JSON")
		}
		r.Metadata = jsontext.Value(v)
	default:
		return apierr.Fieldf(apierr.InvalidQuery, safeName(k), "unknown parameter")
	}
	return nil
}

// queryList splits a comma-separated list, each item trimmed and the
// empty ones dropped, as PushGo's split_query_list ("a,b," is a and b).
func queryList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// safeName makes a client-supplied parameter name fit to echo in a detail.
func safeName(k string) string {
	if len(k) > 64 {
		k = k[:64]
	}
	if q := strconv.Quote(k); q[1:len(q)-1] != k {
		return q
	}
	return k
}
