package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// fieldKind says how a flag's text becomes a member of the request body.
type fieldKind int

const (
	kindText  fieldKind = iota // a JSON string
	kindTime                   // a timestamp: now, an integer (s or ms, as the API reads it) or RFC 3339
	kindList                   // repeated flag: a JSON array of strings
	kindPairs                  // repeated key=value: a JSON object of strings (metadata, external_ids)
)

// field is one body member a command takes from a flag.
type field struct {
	flag, member string
	kind         fieldKind
	usage        string
}

// Fields of the write routes, named as the API names them (flags use
// dashes). The API's rules (lengths, formats) are checked by the gateway,
// whose error names the member.
var (
	fTitle       = field{"title", "title", kindText, "title"}
	fDescription = field{"description", "description", kindText, "description"}
	fStatus      = field{"status", "status", kindText, "status, e.g. running, success, failed (≤ 24 chars)"}
	fMessage     = field{"message", "message", kindText, "what this change is (≤ 512 chars)"}
	fSeverity    = field{"severity", "severity", kindText, "critical, high, normal or low"}
	fThing       = field{"thing", "thing_id", kindText, "id of the Thing this is about"}
	fEventTime   = field{"event-time", "event_time", kindTime, "when this change happened (default now)"}
	fStartedAt   = field{"started-at", "started_at", kindTime, "when the event started (default: event time)"}
	fEndedAt     = field{"ended-at", "ended_at", kindTime, "when the event ended (default: event time)"}
	fObservedAt  = field{"observed-at", "observed_at", kindTime, "when this state was observed (default now)"}
	fCreatedAt   = field{"created-at", "created_at", kindTime, "when the Thing came to be (default: observed time)"}
	fDeletedAt   = field{"deleted-at", "deleted_at", kindTime, "when the Thing was deleted (default: observed time)"}
	fOccurredAt  = field{"occurred-at", "occurred_at", kindTime, "when it happened (default now; required with --thing)"}
	fTTL         = field{"ttl", "ttl", kindTime, "absolute expiry time of the message"}
	fTag         = field{"tag", "tags", kindList, "a tag (repeat for more)"}
	fImage       = field{"image", "images", kindList, "an image URL (repeat for more)"}
	fPrimaryImg  = field{"primary-image", "primary_image", kindText, "the Thing's main image URL"}
	fMeta        = field{"meta", "metadata", kindPairs, "metadata key=value (repeat for more)"}
	fExternalID  = field{"external-id", "external_ids", kindPairs, "external id key=value (repeat for more)"}
	fLocType     = field{"location-type", "location_type", kindText, "physical, geo, cloud, datacenter or logical"}
	fLocValue    = field{"location-value", "location_value", kindText, "the location, in its type's form"}
	fURL         = field{"url", "url", kindText, "a link opened from the notification"}
	fBody        = field{"body", "body", kindText, "the message text (Markdown); see also --body-file"}
	fCiphertext  = field{"ciphertext", "ciphertext", kindText, "end-to-end encrypted payload (Base64), passed through"}
)

// bodyFlags holds the flags of one write command and builds its body.
type bodyFlags struct {
	fields   []field
	text     map[string]*string
	lists    map[string]*[]string
	attrs    []string
	attrJSON string
	hasAttrs bool
	// now is the time "now" and defaults stand for; tests fix it.
	now func() time.Time
}

// register adds the flags of fields (and --attr/--attrs-json when
// withAttrs) to fs.
func newBodyFlags(fs *pflag.FlagSet, withAttrs bool, fields ...field) *bodyFlags {
	b := &bodyFlags{fields: fields, text: map[string]*string{}, lists: map[string]*[]string{}, hasAttrs: withAttrs, now: time.Now}
	for _, f := range fields {
		switch f.kind {
		case kindList, kindPairs:
			b.lists[f.flag] = fs.StringArray(f.flag, nil, f.usage)
		default:
			b.text[f.flag] = fs.String(f.flag, "", f.usage)
		}
	}
	if withAttrs {
		fs.StringArrayVar(&b.attrs, "attr", nil, "attrs member key=value (a string) or key:=JSON (a number, true, false, null or an object); repeat for more")
		fs.StringVar(&b.attrJSON, "attrs-json", "", "attrs as a JSON object (--attr members are merged over it); @FILE reads the file")
	}
	return b
}

// build returns the body: every flag given, plus defaults for the time
// members in defaultNow (set to now when not given).
func (b *bodyFlags) build(fs *pflag.FlagSet, defaultNow ...string) (map[string]any, error) {
	body := map[string]any{}
	for _, f := range b.fields {
		if !fs.Changed(f.flag) {
			continue
		}
		switch f.kind {
		case kindText:
			body[f.member] = *b.text[f.flag]
		case kindTime:
			v, err := parseTime(*b.text[f.flag], b.now)
			if err != nil {
				return nil, usagef("--%s: %v", f.flag, err)
			}
			body[f.member] = v
		case kindList:
			body[f.member] = *b.lists[f.flag]
		case kindPairs:
			m := map[string]string{}
			for _, kv := range *b.lists[f.flag] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return nil, usagef("--%s %q: want key=value", f.flag, kv)
				}
				m[k] = v
			}
			body[f.member] = m
		}
	}
	for _, member := range defaultNow {
		if _, ok := body[member]; !ok {
			body[member] = b.now().UnixMilli()
		}
	}
	if b.hasAttrs {
		attrs, err := buildAttrs(b.attrJSON, b.attrs)
		if err != nil {
			return nil, err
		}
		if attrs != nil {
			body["attrs"] = attrs
		}
	}
	return body, nil
}

// parseTime reads a timestamp flag: "now", an integer passed on as it is
// (the gateway reads ≥ 10^12 as milliseconds and smaller as seconds), or
// an RFC 3339 time (sent in milliseconds).
func parseTime(s string, now func() time.Time) (any, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now().UnixMilli(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return nil, fmt.Errorf("%q: a negative time", s)
		}
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("%q: want now, Unix seconds or milliseconds, or an RFC 3339 time such as 2026-04-22T10:00:00Z", s)
	}
	return t.UnixMilli(), nil
}

// buildAttrs merges --attrs-json (an object) and the --attr members over
// it: key=value is a string, key:=JSON any JSON value. nil when neither
// was given.
func buildAttrs(objJSON string, pairs []string) (map[string]json.RawMessage, error) {
	if objJSON == "" && len(pairs) == 0 {
		return nil, nil
	}
	attrs := map[string]json.RawMessage{}
	if objJSON != "" {
		raw := []byte(objJSON)
		if name, ok := strings.CutPrefix(objJSON, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, usagef("--attrs-json: %v", err)
			}
			raw = b
		}
		if err := json.Unmarshal(raw, &attrs); err != nil || attrs == nil {
			return nil, usagef("--attrs-json: want a JSON object: %v", err)
		}
	}
	for _, p := range pairs {
		if k, v, ok := strings.Cut(p, ":="); ok && k != "" && !strings.Contains(k, "=") {
			if !json.Valid([]byte(v)) {
				return nil, usagef("--attr %q: the value after := is not JSON", p)
			}
			attrs[k] = json.RawMessage(v)
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usagef("--attr %q: want key=value or key:=JSON", p)
		}
		s, _ := json.Marshal(v)
		attrs[k] = s
	}
	return attrs, nil
}
