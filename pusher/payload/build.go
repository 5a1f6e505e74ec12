package payload

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
)

// Errors of Build. ErrExpired is not a fault: the message's ttl has passed
// and spec section 6 says it is not delivered; the caller records that.
var (
	ErrExpired         = errors.New("payload: message expired (ttl passed)")
	ErrUnknownOp       = errors.New("payload: unknown operation")
	ErrUnknownProvider = errors.New("payload: unknown provider")
)

// MaxCollapseIDBytes is the APNs limit on apns-collapse-id.
const MaxCollapseIDBytes = 64

// Wake-up limits. The body preview is wakeup.rs's (180 characters); the
// title is cut at a rune boundary so the wake-up always fits.
const (
	wakeTitleBytes   = 256
	wakePreviewRunes = 180
)

// wakeupKeys are the keys a wake-up push copies from the full map, in
// PushGo's order (gateway src/util/wakeup.rs build_provider_wakeup_data):
// the ids the app pulls and files the item with. severity is ours: an
// Apple device whose extension cannot pull shows the wake-up itself
// (NotificationHandling.swift wakeupFallbackDisplayPayload), and
// NotificationContentPreparer.swift picks its sound from severity.
// watch_light_kind (Apple only) is how a watch files the wake-up's pull.
var wakeupKeys = []string{"title", "delivery_id", "channel_id", "entity_type", "entity_id", "message_id", "event_id",
	"thing_id", "op_id", "sent_at", "ttl", "schema_version", "payload_version", "base_url", "severity", "watch_light_kind"}

// thingActionLabels are the prefixes of a thing alert's title, PushGo's
// texts (gateway src/api/handlers/thing/helpers.rs notification_label).
var thingActionLabels = map[ops.Name]string{
	ops.ThingCreate: "创建", ops.ThingUpdate: "更新", ops.ThingArchive: "存档", ops.ThingDelete: "删除",
}

// DeliveryID is the id of the delivery task of operation seq for a device:
// "<op seq>:<device_key>" (DESIGN: PUSHGO_DELIVERIES message id).
func DeliveryID(seq uint64, deviceKey string) string {
	return strconv.FormatUint(seq, 10) + ":" + deviceKey
}

// Build decides what device deviceKey receives through provider for the
// operation env, stored at stream sequence seq. now is the send time (the
// sent_at key and the expiry check).
//
// It returns ErrExpired for a message whose ttl is not after now, and an
// error for an envelope whose payload does not decode. An item too large for
// the provider comes back as a wake-up push with Oversized set.
func Build(env ops.Envelope, seq uint64, deviceKey string, provider Provider, token string, now time.Time, opts ...Option) (Notification, error) {
	var o buildOptions
	for _, opt := range opts {
		opt(&o)
	}
	if !provider.Valid() {
		return Notification{}, fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	n := Notification{
		DeliveryID: DeliveryID(seq, deviceKey),
		Provider:   provider,
		Token:      token,
	}
	// The keys every push carries (custom.rs StandardFields.apply_to).
	// ingested_at is when ingest accepted the operation (PushGo sends its
	// send time, having no separate accept step).
	d := map[string]string{
		"channel_id":      env.ChannelID,
		"schema_version":  SchemaVersion,
		"payload_version": PayloadVersion,
		"op_id":           env.OpID,
		"delivery_id":     n.DeliveryID,
		"ingested_at":     ms(env.AcceptedAt),
		"sent_at":         ms(now.UnixMilli()),
		"entity_id":       env.EntityID,
	}
	put(d, "base_url", o.baseURL)
	kind := env.Op.Kind()
	if kind == "" {
		return Notification{}, fmt.Errorf("%w %q", ErrUnknownOp, env.Op)
	}
	d["entity_type"] = string(kind)
	if provider == APNs {
		// The Apple Watch files a push by watch_light_kind, and without it
		// takes any push with a thing_id for a Thing's (Shared/Utilities
		// WatchLightQuantizer.swift resolvedStandaloneKind): a message about
		// a Thing overwrote that Thing's title and text on a watch
		// registered as its own device, and never reached its messages.
		// PushGo sends it to watches only (watch_light.rs); an APNs push is
		// one template for every Apple device of the operation, and the
		// iPhone, iPad and Mac apps read no such key.
		d["watch_light_kind"] = string(kind)
	}

	switch kind {
	case ops.KindMessage:
		var p ops.MessagePayload
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return Notification{}, fmt.Errorf("payload: decode %s: %w", env.Op, err)
		}
		if p.TTL != nil {
			if *p.TTL <= now.UnixMilli() {
				return Notification{}, ErrExpired
			}
			d["ttl"] = ms(*p.TTL)
			n.Expiration = time.UnixMilli(*p.TTL).UTC()
		}
		// Both apps drop a message without message_id, and Apple's also
		// one whose entity_id differs from it (NotificationPayloadSemantics
		// canonicalIdentity); PushGo's message_id is the message's id.
		d["message_id"] = env.EntityID
		n.Title, n.Body, n.Severity = p.Title, p.Body, p.Severity
		d["title"] = p.Title
		put(d, "body", p.Body)
		d["severity"] = p.Severity
		d["occurred_at"] = ms(p.OccurredAt)
		put(d, "thing_id", p.ThingID)
		put(d, "url", p.URL)
		putList(d, "images", p.Images)
		putList(d, "tags", p.Tags)
		putValue(d, "metadata", p.Metadata)
		put(d, "ciphertext", p.Ciphertext)
		n.ThreadID = threadID(kind, env.ChannelID, "", "")

	case ops.KindEvent:
		var p ops.EventPayload
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return Notification{}, fmt.Errorf("payload: decode %s: %w", env.Op, err)
		}
		state := ops.EventOngoing
		if env.Op == ops.EventClose {
			state = ops.EventClosed
		}
		d["event_id"] = env.EntityID
		d["event_state"] = state
		d["event_time"] = ms(p.EventTime)
		d["occurred_at"] = ms(p.EventTime)
		put(d, "title", p.Title)
		put(d, "status", p.Status)
		put(d, "message", p.Message)
		put(d, "severity", p.Severity)
		put(d, "description", p.Description)
		if p.StartedAt != nil {
			d["started_at"] = ms(*p.StartedAt)
		}
		if p.EndedAt != nil {
			d["ended_at"] = ms(*p.EndedAt)
		}
		put(d, "thing_id", p.ThingID)
		putList(d, "tags", p.Tags)
		putList(d, "images", p.Images)
		putValue(d, "attrs", p.Attrs)
		putValue(d, "metadata", p.Metadata)
		put(d, "ciphertext", p.Ciphertext)
		if p.Deadline != nil {
			d["deadline"] = ms(*p.Deadline)
		}
		// PushGo's texts (event/routes.rs, custom.rs resolve_notification_text):
		// the operation's title, else "Event <id>"; the body is the
		// message, else the description, else the state.
		put(d, "body", cmp.Or(p.Message, p.Description))
		n.Title = cmp.Or(p.Title, "Event "+env.EntityID)
		n.Body = cmp.Or(d["body"], eventStateBody(state))
		n.Severity = p.Severity
		// An integration's refresh says nothing new: the device learns the
		// new deadline without an alert.
		n.Background = env.Op == ops.EventUpdate && p.Refresh
		n.InboxOnly = n.Background && provider == FCM
		n.CollapseID = collapseID(kind, env.EntityID, n.Background)
		n.ThreadID = threadID(kind, env.ChannelID, env.EntityID, "")

	case ops.KindThing:
		var p ops.ThingPayload
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return Notification{}, fmt.Errorf("payload: decode %s: %w", env.Op, err)
		}
		state := ops.ThingActive
		switch env.Op {
		case ops.ThingArchive:
			state = ops.ThingArchived
		case ops.ThingDelete:
			state = ops.ThingDeleted
		}
		attrs := p.Attrs
		if len(attrs) == 0 {
			attrs = jsontext.Value("{}") // PushGo always sends a thing's attrs
		}
		d["thing_id"] = env.EntityID
		d["state"] = state
		d["observed_at"] = ms(p.ObservedAt)
		d["occurred_at"] = ms(p.ObservedAt)
		d["attrs"] = string(attrs)
		// A title only when the operation names one (or its attrs do):
		// PushGo also writes its fallback "Object <id>" here, and the
		// Apple app then takes it for the thing's title
		// (EntityScreens.swift buildThings reads data title).
		put(d, "title", cmp.Or(p.Title, thingNameFromAttrs(p.Attrs)))
		put(d, "description", p.Description)
		putList(d, "tags", p.Tags)
		put(d, "primary_image", p.PrimaryImage)
		putList(d, "images", p.Images)
		if p.CreatedAt != nil {
			d["created_at"] = ms(*p.CreatedAt)
		}
		if p.DeletedAt != nil {
			d["deleted_at"] = ms(*p.DeletedAt)
		}
		if len(p.ExternalIDs) > 0 {
			// nil values stay null: the Apple app applies external_ids as
			// a patch, null removing a key.
			if b, err := json.Marshal(p.ExternalIDs, json.Deterministic(true)); err == nil {
				d["external_ids"] = string(b)
			}
		}
		if p.LocationType != "" {
			d["location_type"] = p.LocationType
			d["location_value"] = p.LocationValue
			if b, err := json.Marshal(map[string]string{"type": p.LocationType, "value": p.LocationValue}, json.Deterministic(true)); err == nil {
				d["location"] = string(b)
			}
		}
		putValue(d, "metadata", p.Metadata)
		put(d, "ciphertext", p.Ciphertext)
		// PushGo's texts (thing/helpers.rs build_notification_content,
		// custom.rs resolve_notification_text).
		body := p.Description
		if body == "" && env.Op != ops.ThingCreate {
			body = attrsSummaryLines(p.Attrs)
		}
		put(d, "body", body)
		if p.Title != "" {
			n.Title = thingActionLabels[env.Op] + ": " + p.Title
		} else {
			n.Title = cmp.Or(thingNameFromAttrs(p.Attrs), "Object "+env.EntityID)
		}
		n.Body = cmp.Or(body, thingAttributeUpdateBody(p.Attrs), "Updated")
		// A Thing has no severity: PushGo pushes it as normal and puts no
		// severity key in the map.
		n.Severity = ops.SeverityNormal
		n.Background = env.Op == ops.ThingUpdate && o.quietThingUpdates
		n.CollapseID = collapseID(kind, env.EntityID, n.Background)
		n.ThreadID = threadID(kind, env.ChannelID, "", env.EntityID)
	}

	m, ok := MapSeverity(n.Severity)
	if !ok {
		n.Severity = ops.SeverityNormal
		m = severityTable[ops.SeverityNormal]
	}
	n.InterruptionLevel = m.InterruptionLevel
	n.Priority = m.Priority
	if n.Background || (n.Provider == FCM && !androidShows(kind, d["severity"])) {
		n.Priority = PriorityNormal
	}
	n.NowOrNever = nowOrNever(n.Provider, env.Op, n.Background, d["severity"])
	// The device's key goes in the direct push only (dispatch
	// direct_data_with_provider_ack_source): the apps ack a direct push
	// with it and base_url (Apple ProviderDeliveryAckFailureStore
	// DeliveryIdentity.direct, Android inboundProviderAckIdentity), and
	// without it never did, so the push stayed in the inbox and came back
	// at the app's next full pull (a read message unread again, a deleted
	// one back). The inbox's copy has none, as PushGo's pull cache: an item
	// pulled is acked through its pull.
	n.Full = d
	n.Data = maps.Clone(d)
	n.Data["provider_device_key"] = deviceKey
	if n.Provider == FCM {
		// No collapse_key on FCM, as PushGo's sends none: on a phone
		// offline FCM keeps one message a collapse key and four keys a
		// device, with no promise which, so the pushes of a fifth event
		// updated meanwhile (its alert included) were dropped; and a
		// data-only message replaces no notification shown, which is what
		// a collapse key is for. Messages without one are kept, up to a
		// hundred a device.
		n.CollapseID = ""
	}

	if n.Provider == APNs {
		body, err := APNsJSON(n)
		if err != nil {
			return Notification{}, err
		}
		if len(body) <= MaxPayloadBytes {
			n.APNsBody = body
			return n, nil
		}
		w, err := fittingWakeUp(n)
		if err != nil {
			return Notification{}, err
		}
		w.APNsBody, err = APNsJSON(w)
		return w, err
	}
	if Size(n) > MaxPayloadBytes {
		return fittingWakeUp(n)
	}
	return n, nil
}

// androidShows reports whether the PushGo Android app shows a push of
// kind with the data's severity as a notification: a message always, an
// Event or a Thing only at high or critical (NotificationIngressParser
// shouldNotifyEntity; a Thing's push has no severity). A push it does not
// show goes at FCM's normal priority: Google demotes an app whose
// high-priority messages make no visible notification to normal priority
// for all of them, so a channel of Thing updates at high priority would
// in time hold back its critical alerts under Doze.
func androidShows(kind ops.Kind, severity string) bool {
	return kind == ops.KindMessage || severity == ops.SeverityHigh || severity == ops.SeverityCritical
}

// nowOrNever reports whether the push of op to a device of provider is
// worth delivering only while the device is connected. A provider keeps
// little for a device that is not: APNs one notification an app (the
// last), FCM a hundred messages, every one of them dropped when one more
// comes (and the PushGo Android app handles no onDeletedMessages). The
// pushes of a busy channel that show nothing filled that store on a phone
// offline overnight and took its alerts with them: an iPhone on a quiet
// channel kept a Thing's last background update instead of the critical
// alert before it (a ringing update still does: it is an alert), and FCM
// dropped the critical alert with a hundred Thing updates. Such pushes are
// sent now or never: an APNs background push, and on FCM what the Android
// app does not show (androidShows). The device's inbox keeps them, and both
// apps pull it when opened (the Android app at each return to the
// foreground, the Apple app at launch and on refresh). A Thing's creation,
// archive and deletion stay stored on FCM: rare, and the Android app holds
// back, without notifying, a message about a Thing it does not know yet.
func nowOrNever(p Provider, op ops.Name, background bool, severity string) bool {
	if background {
		return true
	}
	if p != FCM || androidShows(op.Kind(), severity) {
		return false
	}
	switch op {
	case ops.ThingCreate, ops.ThingArchive, ops.ThingDelete:
		return false
	}
	return true
}

// fittingWakeUp is n's wake-up, its preview and title shortened (halved,
// the preview first) until it fits MaxPayloadBytes. A preview of 180
// characters and a title of 256 bytes fit unless their characters are
// escaped in JSON (a control character is six bytes, and each is written
// twice: the alert and the data map): such a wake-up was refused by APNs
// (413) and nothing arrived.
func fittingWakeUp(n Notification) (Notification, error) {
	for preview, title := wakePreviewRunes, wakeTitleBytes; ; {
		w := wakeUp(n, preview, title)
		if preview == 0 && title == 0 || Size(w) <= MaxPayloadBytes {
			return w, nil
		}
		if preview > 0 {
			preview /= 2
		} else {
			title /= 2
		}
	}
}

// wakeUp replaces the content of an oversized n with PushGo's wake-up push
// (wakeup.rs): the keys of wakeupKeys, a preview of the body, and the three
// markers by which both apps recognise it and fetch delivery_id from the
// inbox instead of filing the push (Android NotificationIngressParser
// providerWakeupPullDeliveryId, Apple NotificationHandling
// providerWakeupPullDeliveryId; _skip_persist keeps the Apple app from
// storing the wake-up itself). The alert stays visible, its body the
// preview, so the person still sees what happened if the fetch fails; it
// keeps its severity's sound and interruption level for the same reason,
// and goes at high priority (PushGo's apns.rs wakeup and android.rs
// "HIGH"): the device must wake up to fetch. A background push stays one.
//
// The preview keeps at most previewRunes characters and the title
// titleBytes bytes (wakePreviewRunes and wakeTitleBytes, unless that does
// not fit: fittingWakeUp).
func wakeUp(n Notification, previewRunes, titleBytes int) Notification {
	full := n.Full
	d := map[string]string{"provider_mode": "wakeup", "provider_wakeup": "1", "_skip_persist": "1"}
	for _, k := range wakeupKeys {
		put(d, k, full[k])
	}
	if t, ok := d["title"]; ok {
		d["title"] = cut(t, titleBytes)
	}
	preview := wakePreview(full["body"], previewRunes)
	put(d, "body", preview)
	n.Title = cut(n.Title, titleBytes)
	n.Body = preview
	if !n.Background && (n.Provider != FCM || androidShows(ops.Kind(full["entity_type"]), full["severity"])) {
		n.Priority = PriorityHigh
	}
	n.Data, n.Full, n.Oversized = d, full, true
	n.APNsBody = nil
	return n
}

// wakePreview is wakeup.rs's wakeup_body_preview: the body's non-blank
// lines, trimmed, joined by newlines, at most max characters (180). We end
// a cut preview with "…" so it does not read as the whole text.
func wakePreview(body string, max int) string {
	var lines []string
	for l := range strings.Lines(body) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines, "\n")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	i, r := 0, 0
	for i = range s {
		if r == max {
			break
		}
		r++
	}
	return strings.TrimSpace(s[:i]) + "…"
}

// collapseID is "<kind>:<entity id>" (":bg" appended for background pushes,
// so a Thing's quiet updates never replace its visible alerts). An id
// longer than the APNs limit is replaced by a hash of it.
func collapseID(kind ops.Kind, entityID string, background bool) string {
	id := string(kind) + ":" + entityID
	if background {
		id += ":bg"
	}
	if len(id) <= MaxCollapseIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return string(kind) + ":h:" + hex.EncodeToString(sum[:16])
}

// threadID is the APNs thread-id: PushGo's (custom.rs apple_thread_id),
// which is also what the Apple app sets when its extension runs
// (NotificationPayloadSemantics.swift notificationThreadIdentifier), so a
// notification lands in the same group either way.
func threadID(kind ops.Kind, channelID, eventID, thingID string) string {
	parts := []string{string(kind), "channel=" + channelID}
	if eventID != "" {
		parts = append(parts, "event="+eventID)
	}
	if thingID != "" {
		parts = append(parts, "thing="+thingID)
	}
	return strings.Join(parts, "|")
}

// eventStateBody is PushGo's body of an event push without a message or
// description (custom.rs default_event_body).
func eventStateBody(state string) string {
	switch state {
	case ops.EventOngoing:
		return "Ongoing"
	case ops.EventClosed:
		return "Closed"
	}
	return "Updated"
}

// attrsObject decodes an attrs patch, nil when it is not an object.
func attrsObject(v jsontext.Value) map[string]jsontext.Value {
	if len(v) == 0 {
		return nil
	}
	var m map[string]jsontext.Value
	if json.Unmarshal(v, &m) != nil {
		return nil
	}
	return m
}

// scalarText is custom.rs json_scalar_text: a non-blank string (trimmed),
// a number or a boolean; "" for anything else.
func scalarText(v jsontext.Value) string {
	switch v.Kind() {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return ""
		}
		return strings.TrimSpace(s)
	case '0', 't', 'f':
		return string(v)
	}
	return ""
}

// thingNameFromAttrs is custom.rs thing_name_from_attrs: the first of the
// attrs name, thing_name and 名称 that is a scalar.
func thingNameFromAttrs(v jsontext.Value) string {
	m := attrsObject(v)
	for _, k := range []string{"name", "thing_name", "名称"} {
		if s := scalarText(m[k]); s != "" {
			return s
		}
	}
	return ""
}

// isNameKey reports whether an attrs key names the thing; those go first
// (custom.rs attribute_sort_priority, and the apps' own ordering).
func isNameKey(k string) bool {
	k = strings.TrimSpace(k)
	l := strings.ToLower(k)
	return l == "name" || l == "thing_name" || k == "名称"
}

// thingAttributeUpdateBody is custom.rs thing_attribute_update_body: up to
// six scalar attrs, name keys first then by lower-cased key, as
// "Attribute update || k: v, k: v"; "" when there is none.
func thingAttributeUpdateBody(v jsontext.Value) string {
	type pair struct{ k, v string }
	var pairs []pair
	for k, val := range attrsObject(v) {
		name, text := strings.TrimSpace(k), scalarText(val)
		if name != "" && text != "" {
			pairs = append(pairs, pair{name, text})
		}
	}
	if len(pairs) == 0 {
		return ""
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if na, nb := isNameKey(a.k), isNameKey(b.k); na != nb {
			if na {
				return -1
			}
			return 1
		}
		return cmp.Compare(strings.ToLower(a.k), strings.ToLower(b.k))
	})
	details := make([]string, 0, 6)
	for _, p := range pairs[:min(len(pairs), 6)] {
		details = append(details, p.k+": "+p.v)
	}
	return "Attribute update || " + strings.Join(details, ", ")
}

// attrsSummaryLines is thing/helpers.rs attrs_summary_lines, the body of a
// thing update, archive or delete without a description: every key of the
// patch in key order as "k=v", one per line (null as "null", objects and
// arrays as JSON); "" for an empty patch.
func attrsSummaryLines(v jsontext.Value) string {
	m := attrsObject(v)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		val := m[k]
		text := string(val)
		if val.Kind() == '"' {
			var s string
			if json.Unmarshal(val, &s) == nil {
				text = s
			}
		}
		lines = append(lines, k+"="+text)
	}
	return strings.Join(lines, "\n")
}

func ms(v int64) string { return strconv.FormatInt(v, 10) }

func put(d map[string]string, k, v string) {
	if v != "" {
		d[k] = v
	}
}

// putList stores a list as a JSON array string; an explicitly empty list is
// kept ("[]" clears the list on the device: the Apple app applies a present
// tags or images key as a patch), an absent one is omitted.
func putList(d map[string]string, k string, v []string) {
	if v == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	d[k] = string(b)
}

func putValue(d map[string]string, k string, v jsontext.Value) {
	if len(v) > 0 {
		d[k] = string(v)
	}
}

// cut shortens s to at most n bytes at a rune boundary, ending in "…" when
// it cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	if n <= len(ellipsis) {
		return ""
	}
	n -= len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}

// Option changes what Build makes.
type Option func(*buildOptions)

type buildOptions struct {
	quietThingUpdates bool
	baseURL           string
}

// QuietThingUpdates makes thing.update a background push (APNs
// content-available at priority 5, FCM normal priority) instead of PushGo's
// alert: for channels whose Things report every few seconds
// (PUSHGO_THING_UPDATE_QUIET). The device still receives every update.
func QuietThingUpdates() Option { return func(o *buildOptions) { o.quietThingUpdates = true } }

// BaseURL adds base_url, the gateway's public URL, to every push (as
// PushGo's PUSHGO_PUBLIC_BASE_URL): the Apple app pulls a wake-up's item
// from it first (NotificationHandling.swift wakeupGatewayURL). Empty adds
// nothing; the app then asks the gateways of its subscriptions.
func BaseURL(u string) Option { return func(o *buildOptions) { o.baseURL = strings.TrimRight(u, "/") } }
