package gateway

import (
	"fmt"
	"net"
)

// checkPortsFree checks, before anything is started or opened, that the
// addresses this process will listen on are free: the HTTP address, and
// the embedded broker's client port. A busy port is then one clear error
// at once. Found later, a busy broker port was the NATS server's own error
// line, a 30-second wait for a readiness that never came, and the
// JetStream store opened in the meantime, which is another pushgo's when
// `make run` runs twice on one data directory.
func (cfg Config) checkPortsFree() error {
	addrs := []struct{ what, addr string }{{"", cfg.HTTPAddr}}
	if cfg.NATSURL == "" && cfg.NATSListen != "" && cfg.NATSListen != "off" {
		addrs = append(addrs, struct{ what, addr string }{"embedded broker: ", cfg.NATSListen})
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			return fmt.Errorf("%slisten %s: %w", a.what, a.addr, err)
		}
		if err := ln.Close(); err != nil {
			return fmt.Errorf("%slisten %s: %w", a.what, a.addr, err)
		}
	}
	return nil
}
