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
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := &apns2.Response{StatusCode: resp.StatusCode, ApnsID: resp.Header.Get("apns-id"),
		ApnsUniqueID: resp.Header.Get("apns-unique-id")}
	if err := json.NewDecoder(resp.Body).Decode(r); err != nil && !errors.Is(err, io.EOF) {
		return &apns2.Response{}, err
	}
	return r, nil
}

// setHeaders sets n's APNs headers on r, as apns2 does.
func setHeaders(r *http.Request, n *apns2.Notification) {
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	if n.Topic != "" {
		r.Header.Set("apns-topic", n.Topic)
	}
	if n.ApnsID != "" {
		r.Header.Set("apns-id", n.ApnsID)
	}
	if n.CollapseID != "" {
		r.Header.Set("apns-collapse-id", n.CollapseID)
	}
	if n.Priority > 0 {
		r.Header.Set("apns-priority", strconv.Itoa(n.Priority))
	}
	if n.Expiration.After(time.Unix(0, 0)) {
		r.Header.Set("apns-expiration", strconv.FormatInt(n.Expiration.Unix(), 10))
	}
	pushType := n.PushType
	if pushType == "" {
		pushType = apns2.PushTypeAlert
	}
	r.Header.Set("apns-push-type", string(pushType))
}
