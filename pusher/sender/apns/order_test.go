package apns_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestPipelinedPushesArriveInOrder: each device's pushes, each started
// once the one before was reported written (as the pusher's scheduler
// does), arrive at the provider in the order they were started, while the
// provider answers them out of order. The provider here reads each
// connection's frames in order (sendertest.FrameAPNs): the order Apple's
// front end sees, whatever it serves concurrently after.
func TestPipelinedPushesArriveInOrder(t *testing.T) {
	type arrival struct {
		token string
		push  int // the push's index, from its title
	}
	pushIndex := regexp.MustCompile(`push-(\d+)-end`)
	var (
		mu  sync.Mutex
		got []arrival
	)
	srv := sendertest.NewFrameAPNs(t, func(r sendertest.FrameRequest) time.Duration {
		a := arrival{token: r.Token, push: -1}
		if m := pushIndex.FindSubmatch(r.Body); m != nil {
			a.push, _ = strconv.Atoi(string(m[1]))
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
		return time.Duration(rand.IntN(3000)) * time.Microsecond // answers overtake each other
	})
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: srv.URL(), NewHTTPClient: srv.NewClient, Connections: 2, SendTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const devices, pushes = 6, 40
	var wg sync.WaitGroup
	for d := range devices {
		token := fmt.Sprintf("%064x", d)
		wg.Go(func() {
			var sends sync.WaitGroup
			for i := range pushes {
				n := build(t, ops.MessageCreate, "m"+strconv.Itoa(i), ops.MessagePayload{Title: fmt.Sprintf("push-%d-end", i), Severity: "normal", OccurredAt: 1}, token)
				turn := make(chan struct{})
				var once sync.Once
				end := func() { once.Do(func() { close(turn) }) }
				sends.Go(func() {
					defer end()
					if res := s.Send(sender.WithWritten(t.Context(), end), n); res.Outcome != sender.Sent {
						t.Errorf("device %d push %d: %v", d, i, res)
					}
				})
				<-turn
			}
			sends.Wait()
		})
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(got) != devices*pushes {
		t.Fatalf("%d pushes arrived, want %d", len(got), devices*pushes)
	}
	next := map[string]int{}
	for _, a := range got {
		if a.push != next[a.token] {
			t.Fatalf("device %s…: push %d arrived when %d was next: out of the order they were started", a.token[:8], a.push, next[a.token])
		}
		next[a.token]++
	}
	if srv.Overtaken() == 0 {
		t.Fatal("every answer came in the order of the requests: the test did not pipeline")
	}
}
