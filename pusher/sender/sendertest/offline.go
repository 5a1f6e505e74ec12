package sendertest

import "github.com/pushgo/gateway/pusher/payload"

// FCMStoredMax is the most messages FCM stores for a device that is not
// connected; past it FCM drops every stored message and tells the app
// (onDeletedMessages) to sync ("Android allows up to 100 messages to be
// stored without collapsing", Firebase: collapsible message types).
const FCMStoredMax = 100

// OfflineDelivery is what a device of provider p that was not connected
// while the pushes sent came (in order) receives when it connects again,
// by what the providers document of their store:
//
//   - APNs stores one notification an app: the last (Apple: "only one
//     notification is stored ... the last one").
//   - FCM stores every message up to FCMStoredMax; one more and all of them
//     are dropped. A message with a collapse key replaces the stored one
//     with that key.
//   - Neither stores a push that asks for none (NowOrNever: apns-expiration
//     0, FCM ttl 0s), or one already expired.
//
// dropped reports that FCM dropped its store on the way. The model leaves
// out what no test here needs: FCM's four collapse keys, its throttling of
// collapsible messages, APNs's coalescing delays.
func OfflineDelivery(p payload.Provider, sent []Observed) (received []Observed, dropped bool) {
	var stored []Observed
	for _, o := range sent {
		if o.NowOrNever {
			continue
		}
		if p == payload.APNs {
			stored = []Observed{o}
			continue
		}
		if o.CollapseID != "" {
			replaced := false
			for i := range stored {
				if stored[i].CollapseID == o.CollapseID {
					stored[i], replaced = o, true
				}
			}
			if replaced {
				continue
			}
		}
		if len(stored) == FCMStoredMax {
			stored, dropped = nil, true
			continue
		}
		stored = append(stored, o)
	}
	return stored, dropped
}
