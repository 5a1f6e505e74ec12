package apns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sideshow/apns2"
)

// push sends n over c exactly as apns2's PushWithContext does (the same
// request, headers and body, and the same Response), without its
// json.Marshal of the Notification: encoding/json validates and compacts
// again the bytes a MarshalJSON returns, and a body that is compact JSON
// already paid that at every push (8.6% of a push's CPU in the delivery
// profile). A Notification this does not cover (a payload that is not
// bytes, a client with apns2's own token) goes through PushWithContext.
func push(ctx context.Context, c *apns2.Client, n *apns2.Notification) (*apns2.Response, error) {
	body, ok := n.Payload.([]byte)
	if !ok || c.Token != nil {
		return c.PushWithContext(ctx, n)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Host+"/3/device/"+n.DeviceToken, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	setHeaders(req, n)
	// The transport, not the client: APNs never redirects, every Send is
	// bounded by its context, and http.Client.Do copied every request's
	// headers for the redirects it might follow (3% of what the delivery
	// latency row allocated).
	rt := c.HTTPClient.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := &apns2.Response{StatusCode: resp.StatusCode, ApnsID: resp.Header.Get("apns-id"),
		ApnsUniqueID: resp.Header.Get("apns-unique-id")}
	if resp.StatusCode == http.StatusOK {
		// APNs answers a success with headers alone (HTTP/2 then says a
		// length of 0): apns2's decoder would read an empty body, and a
		// decoder and its buffer a push were 4% of what the delivery
		// latency row allocated. A body there may be (a proxy's) is read
		// to its end, so the stream or connection is not cut.
		if resp.ContentLength != 0 {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		}
		return r, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(r); err != nil && !errors.Is(err, io.EOF) {
		return &apns2.Response{}, err
	}
	return r, nil
}

// nowOrNever is the Expiration of an apns2.Notification that asks APNs to
// store nothing (apns-expiration 0): apns2 has no word for it (its zero
// time means no header, and it writes only times after the epoch), so the
// epoch itself says it here. apns2's own PushWithContext, which push
// falls back to for a Notification it does not cover, would send no
// header: the Sender's Notifications are all covered (bytes, no apns2
// token).
var nowOrNever = time.Unix(0, 0)

// setHeaders sets n's APNs headers on r, as apns2 does. The keys are
// written in their canonical form and the values share one array: Set
// made a canonical copy of each lower-case key and a slice of each value,
// for every push.
func setHeaders(r *http.Request, n *apns2.Notification) {
	vals := make([]string, 0, 7)
	h := make(http.Header, 8) // the 7 below, and the authorization the transport adds
	put := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	put("Content-Type", "application/json; charset=utf-8")
	if n.Topic != "" {
		put("Apns-Topic", n.Topic)
	}
	if n.ApnsID != "" {
		put("Apns-Id", n.ApnsID)
	}
	if n.CollapseID != "" {
		put("Apns-Collapse-Id", n.CollapseID)
	}
	if n.Priority > 0 {
		put("Apns-Priority", strconv.Itoa(n.Priority))
	}
	switch {
	case n.Expiration.Equal(nowOrNever):
		put("Apns-Expiration", "0")
	case n.Expiration.After(nowOrNever):
		put("Apns-Expiration", strconv.FormatInt(n.Expiration.Unix(), 10))
	}
	pushType := n.PushType
	if pushType == "" {
		pushType = apns2.PushTypeAlert
	}
	put("Apns-Push-Type", string(pushType))
	r.Header = h
}
