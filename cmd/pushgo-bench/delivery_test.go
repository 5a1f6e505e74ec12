package main

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestFakeProviderRecords: the fake answers both providers' requests and
// records arrival and acceptance times, once per delivery id.
func TestFakeProviderRecords(t *testing.T) {
	f := newFakeProvider()
	defer f.close()
	accepted := time.Now().UnixMilli()
	a := f.reset(5*time.Millisecond, accepted)
	apns := f.apnsClient()
	body := []byte(`{"aps":{"alert":{"title":"t"}},"delivery_id":"7:dev","ingested_at":"` + itoa(accepted) + `"}`)
	for range 2 { // the second is a duplicate
		resp, err := apns.Post(f.apnsURL()+"/3/device/abcd", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("apns: %d %s", resp.StatusCode, resp.Proto)
		}
	}
	fcm := []byte(`{"message":{"token":"x","data":{"delivery_id":"8:dev","ingested_at":"` + itoa(accepted) + `"}}}`)
	resp, err := http.Post(f.fcmEndpoint()+"/projects/p/messages:send", "application/json", bytes.NewReader(fcm))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stale := []byte(`{"message":{"data":{"delivery_id":"9:dev","ingested_at":"` + itoa(accepted-1) + `"}}}`)
	resp, err = http.Post(f.fcmEndpoint()+"/projects/p/messages:send", "application/json", bytes.NewReader(stale))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	st := a.stats(0)
	if st.n != 2 || st.dups != 1 || st.stale != 1 || st.bad != 0 || len(st.lat) != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st.lat[0] < 0 || st.lat[1] > 5*time.Second {
		t.Fatalf("latencies %v", st.lat)
	}
	if got := profilePath("/tmp/d.prof", "0ms"); got != "/tmp/d-0ms.prof" {
		t.Fatalf("profilePath %q", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
