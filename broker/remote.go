package broker

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// Remote is how a process authenticates to a broker it did not start:
// another pushgo process's embedded server, or a NATS cluster.
type Remote struct {
	// Creds is a NATS credentials file (.creds: a user JWT and its seed)
	// or an nkey seed file (such as an embedded server's <role>.nk).
	// Empty: no credentials.
	Creds string
	// TLSCA is a PEM file of the CAs that sign the server's certificate;
	// empty trusts the system's roots (with a tls:// URL or a server that
	// requires TLS).
	TLSCA string
	// TLSCert and TLSKey are the client certificate and key (PEM), for a
	// server that verifies clients; both or neither.
	TLSCert, TLSKey string
}

// Options are the nats.Connect options that present r's credentials and
// TLS settings. It reads the credentials file once to tell its kind.
func (r Remote) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if r.Creds != "" {
		b, err := os.ReadFile(r.Creds)
		if err != nil {
			return nil, fmt.Errorf("broker credentials: %w", err)
		}
		if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
			opts = append(opts, nats.UserCredentials(r.Creds))
		} else {
			o, err := nats.NkeyOptionFromSeed(r.Creds)
			if err != nil {
				return nil, fmt.Errorf("broker credentials %s: neither a .creds file nor an nkey seed: %w", r.Creds, err)
			}
			opts = append(opts, o)
		}
	}
	if (r.TLSCert == "") != (r.TLSKey == "") {
		return nil, errors.New("broker TLS: a client certificate needs its key and a key its certificate")
	}
	if r.TLSCA != "" {
		opts = append(opts, nats.RootCAs(r.TLSCA))
	}
	if r.TLSCert != "" {
		opts = append(opts, nats.ClientCert(r.TLSCert, r.TLSKey))
	}
	return opts, nil
}
