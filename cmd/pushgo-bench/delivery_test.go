package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestFakeProviderRecords: the fake answers both providers' requests and
// records arrival and acceptance times, once per delivery id.
func TestFakeProviderRecords(t *testing.T) {
	f, err := newFakeProvider()
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	accepted := time.Now().UnixMilli()
	a := f.reset(5*time.Millisecond, accepted)
	roots := x509.NewCertPool()
	roots.AddCert(f.apns.cert)
	apns, tr := apnsSenderClient(roots)
	defer tr.CloseIdleConnections()
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

// TestProviderProcess: the fake runs in a process of its own, which the
// APNs sender reaches with the client apnsClient gives, answering after
// the latency set at reset; the parent waits for the pushes without
// polling them one request each, and the record's stats come back whole
// (latencies, duplicates, the pushes of operations accepted before the
// record's start counted as stale). Its CPU is readable, and it ends when
// closed.
func TestProviderProcess(t *testing.T) {
	ctx := context.Background()
	p, err := startProviderProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.hello.PID == os.Getpid() || p.hello.PID == 0 {
		t.Fatalf("provider pid %d, this process %d", p.hello.PID, os.Getpid())
	}
	accepted := time.Now().UnixMilli()
	a, err := p.reset(ctx, 30*time.Millisecond, accepted)
	if err != nil {
		t.Fatal(err)
	}
	apns := p.apnsClient()
	send := func(id string, acc int64) time.Duration {
		t.Helper()
		body := []byte(`{"aps":{"alert":{"title":"t"}},"delivery_id":"` + id + `","ingested_at":"` + itoa(acc) + `"}`)
		began := time.Now()
		resp, err := apns.Post(p.apnsURL()+"/3/device/abcd", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("apns: %d %s", resp.StatusCode, resp.Proto)
		}
		return time.Since(began)
	}
	if took := send("1:dev", accepted); took < 30*time.Millisecond {
		t.Fatalf("answered in %s, the latency is 30ms", took)
	}
	send("1:dev", accepted)   // a duplicate
	send("2:dev", accepted-1) // stale: accepted before the record
	fcm := []byte(`{"message":{"token":"x","data":{"delivery_id":"3:dev","ingested_at":"` + itoa(accepted) + `"}}}`)
	resp, err := http.Post(p.fcmEndpoint()+"/projects/p/messages:send", "application/json", bytes.NewReader(fcm))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := a.wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	st, err := a.stats(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.n != 2 || st.dups != 1 || st.stale != 1 || st.bad != 0 || len(st.lat) != 2 || st.first.After(st.last) || st.first.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	if st.lat[0] < 0 || st.lat[1] > 5*time.Second {
		t.Fatalf("latencies %v", st.lat)
	}
	// A new record starts empty.
	if a, err = p.reset(ctx, 0, accepted); err != nil {
		t.Fatal(err)
	}
	if st, err := a.stats(ctx, 0); err != nil || st.n != 0 {
		t.Fatalf("after reset: %+v, %v", st, err)
	}
	if p.cpu() <= 0 {
		t.Fatal("the provider process's CPU time is not readable")
	}
	p.close()
	select {
	case <-p.exited:
	default:
		t.Fatal("the provider process outlived close")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The fake APNs flushes its answers unless a whole frame waits to be read:
// with part of a frame buffered the next read blocks, and an answer held
// back then waits for the sender's next request, which (one push at a time
// per device) waits for that answer.
func TestFrameBuffered(t *testing.T) {
	frame := []byte{0, 0, 3, 0, 0, 0, 0, 0, 1, 'a', 'b', 'c'} // a 3-byte DATA frame
	for n, want := range map[int]bool{0: false, 5: false, 9: false, 11: false, 12: true} {
		br := bufio.NewReader(bytes.NewReader(frame[:n]))
		br.Peek(n)
		if got := frameBuffered(br); got != want {
			t.Errorf("%d bytes buffered: frameBuffered %v, want %v", n, got, want)
		}
	}
}
