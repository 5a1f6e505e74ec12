package broker_test

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/pushgo/gateway/broker"
)

// TestStartSaysWhichPortIsTaken: a broker told to listen on a port
// another process holds (its client port, or its cluster port) does not
// start, and Start's error says so and names the port, instead of a bare
// "not ready" after the readiness timeout.
func TestStartSaysWhichPortIsTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	taken := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for _, tc := range []struct {
		name string
		cfg  broker.Config
	}{
		{"client port", broker.Config{Listen: taken}},
		{"cluster port", broker.Config{Listen: "127.0.0.1:0", ServerName: "n0", ClusterName: "c",
			ClusterListen: taken, Routes: []string{"nats-route://" + taken}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Dir = t.TempDir()
			e, err := broker.Start(cfg)
			if err == nil {
				e.Shutdown()
				t.Fatalf("started on a port another listener holds (%s)", taken)
			}
			if !errors.Is(err, broker.ErrNotReady) || !errors.Is(err, broker.ErrListen) {
				t.Errorf("error %v does not wrap ErrNotReady and ErrListen", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(port)) || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("error %q does not name the taken port %d and the cause", err, port)
			}
		})
	}
}
