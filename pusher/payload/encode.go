package payload

import (
	"github.com/go-json-experiment/json"
)

// APNsJSON is the APNs request body for n: the aps dictionary with the flat
// data keys beside it. Keys are sorted, so the body is deterministic.
//
// An alert:
//
//	{"aps":{"alert":{"title":T,"body":B},"sound":"default",
//	  "interruption-level":L,"thread-id":TH,"mutable-content":1}, data...}
//
// A background push (no alert, sound or badge, as Apple requires):
//
//	{"aps":{"content-available":1}, data...}
//
// mutable-content lets the app's notification service extension decrypt
// ciphertext or fetch a wake-up's full item before the alert shows.
func APNsJSON(n Notification) ([]byte, error) {
	body := make(map[string]any, len(n.Data)+1)
	for k, v := range n.Data {
		body[k] = v
	}
	aps := map[string]any{}
	if n.Background {
		aps["content-available"] = 1
	} else {
		alert := map[string]string{"title": n.Title}
		if n.Body != "" {
			alert["body"] = n.Body
		}
		aps["alert"] = alert
		aps["mutable-content"] = 1
		if m, ok := MapSeverity(n.Severity); !ok || m.Sound {
			aps["sound"] = "default"
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

// Size is the number of bytes n counts against the provider's limit: the
// APNs body, or for FCM the encoded data map plus the notification's title
// and body.
func Size(n Notification) int {
	switch n.Provider {
	case APNs:
		b, err := APNsJSON(n)
		if err != nil {
			return MaxPayloadBytes + 1
		}
		return len(b)
	default:
		b, err := json.Marshal(n.Data, json.Deterministic(true))
		if err != nil {
			return MaxPayloadBytes + 1
		}
		size := len(b)
		if !n.Background {
			size += len(n.Title) + len(n.Body)
		}
		return size
	}
}
