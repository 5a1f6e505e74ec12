package payload

import (
	"github.com/go-json-experiment/json"
)

// APNsJSON is the APNs request body for n: the aps dictionary with the flat
// data keys beside it (custom.rs and providers/apns.rs ApnsPayload, data
// flattened next to aps). Keys are sorted, so the body is deterministic.
//
// An alert:
//
//	{"aps":{"alert":{"title":T,"body":B},"sound":S,
//	  "interruption-level":L,"thread-id":TH,"mutable-content":1}, data...}
//
// S is the severity's sound file, for critical PushGo's critical-alert
// dictionary {"name":"alert.caf","critical":1,"volume":1}, absent for low.
// mutable-content lets the app's notification service extension run: it
// decrypts ciphertext, fetches a wake-up's full item, and files the push.
//
// A background push (no alert, sound or badge, as Apple requires):
//
//	{"aps":{"content-available":1}, data...}
func APNsJSON(n Notification) ([]byte, error) {
	body := make(map[string]any, len(n.Data)+1)
	for k, v := range n.Data {
		body[k] = v
	}
	aps := map[string]any{}
	if n.Background {
		aps["content-available"] = 1
	} else {
		alert := map[string]string{}
		if n.Title != "" {
			alert["title"] = n.Title
		}
		if n.Body != "" {
			alert["body"] = n.Body
		}
		aps["alert"] = alert
		aps["mutable-content"] = 1
		if s := apnsSound(n.Severity); s != nil {
			aps["sound"] = s
		}
		if n.InterruptionLevel != "" {
			aps["interruption-level"] = n.InterruptionLevel
		}
		if n.ThreadID != "" {
			aps["thread-id"] = n.ThreadID
		}
	}
	body["aps"] = aps
	return json.Marshal(body, json.Deterministic(true))
}

// apnsSound is the aps.sound of severity: a file name, the critical-alert
// dictionary, or nil for a silent alert.
func apnsSound(severity string) any {
	m, ok := MapSeverity(severity)
	if !ok {
		m = severityTable["normal"]
	}
	switch {
	case m.Sound == "":
		return nil
	case m.CriticalSound:
		return map[string]any{"name": m.Sound, "critical": 1, "volume": 1.0}
	}
	return m.Sound
}

// Size is the number of bytes n counts against the provider's limit: the
// APNs body, or for FCM its data map as FCM counts it (fcmDataBytes; FCM
// pushes are data-only).
func Size(n Notification) int {
	switch n.Provider {
	case APNs:
		b, err := APNsJSON(n)
		if err != nil {
			return MaxPayloadBytes + 1
		}
		return len(b)
	default:
		return fcmDataBytes(n.Data)
	}
}

// fcmDataBytes is what FCM counts of a data map against its 4,096 bytes,
// with room to spare: each key and value (their bytes, unescaped) and six
// bytes a pair, then fcmReserved. FCM refuses a message over its count
// with 400 INVALID_ARGUMENT ("Android message is too big"), a failure
// the app never hears of; measured against the live API its count is
// that sum and about 39 bytes more, so data whose JSON was a few dozen
// bytes under 4,096 passed our check and was refused (PushGo counts the
// whole request, token included, and sends such a push as a wake-up).
func fcmDataBytes(d map[string]string) int {
	n := fcmReserved
	for k, v := range d {
		n += len(k) + len(v) + 6
	}
	return n
}

// fcmReserved is what fcmDataBytes adds for what FCM counts beyond the
// pairs (about 39 bytes measured), with as much again to spare.
const fcmReserved = 80
