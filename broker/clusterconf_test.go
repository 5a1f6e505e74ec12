package broker_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/pushgo/gateway/broker"
)

var update = flag.Bool("update", false, "rewrite deploy/nats/accounts.conf from the roles' permissions")

// accountsConf is the cluster's copy of the roles' permissions, for a NATS
// server configuration to include.
const accountsConf = "../deploy/nats/accounts.conf"

// nkeyVar is the environment variable that holds the public nkey of role r
// for a cluster's servers.
func nkeyVar(r broker.Role) string { return "PUSHGO_NKEY_" + strings.ToUpper(string(r)) }

// renderAccounts writes the roles' permissions as NATS configuration: one
// account, PUSHGO, with JetStream, and one nkey user per role.
func renderAccounts() string {
	var b strings.Builder
	b.WriteString(`# The pushgo roles' NATS permissions, for a cluster's server configuration:
# the embedded broker grants exactly these (broker/auth.go). Generated:
#   go test ./broker -run TestClusterAccountsConf -update
#
# Include it from the server configuration (include ./accounts.conf) and
# give every server the public nkey of each role in its environment:
#   ` + strings.Join(roleVars(), " ") + `
# Make a key pair with "nk -gen user -pubout" (or copy one from an embedded
# broker's <data dir>/credentials/<role>.nk): the public key (U...) goes in
# the variable, the seed file (S...) to the processes of that role as
# PUSHGO_NATS_CREDS. A pushgo process of target T uses role T; only
# ingest and all may append to pushgo.op.>; admin is unrestricted, for the
# operator's nats CLI, never for a pushgo process.
`)
	for _, r := range broker.Roles {
		p := r.Permissions()
		if p == nil {
			continue
		}
		fmt.Fprintf(&b, "\nPUSHGO_PERMISSIONS_%s = {\n", strings.ToUpper(string(r)))
		fmt.Fprintf(&b, "  publish: { allow: [\n%s  ] }\n", quoted(p.Publish.Allow))
		fmt.Fprintf(&b, "  subscribe: { allow: [\n%s  ] }\n}\n", quoted(p.Subscribe.Allow))
	}
	b.WriteString(`
# PUSHGO_MAX_FILE bounds the account's file storage over every copy of its
# data (an R3 stream's bytes count three times); a write past it is refused
# (the gateway's 507 store_full), and the gateway measures it for /readyz.
accounts {
  PUSHGO {
    jetstream: { max_file: $PUSHGO_MAX_FILE }
    users: [
`)
	for _, r := range broker.Roles {
		if r.Permissions() == nil {
			fmt.Fprintf(&b, "      { nkey: $%s }\n", nkeyVar(r))
			continue
		}
		fmt.Fprintf(&b, "      { nkey: $%s, permissions: $PUSHGO_PERMISSIONS_%s }\n", nkeyVar(r), strings.ToUpper(string(r)))
	}
	b.WriteString("    ]\n  }\n}\n")
	return b.String()
}

func roleVars() []string {
	var out []string
	for _, r := range broker.Roles {
		out = append(out, nkeyVar(r))
	}
	return out
}

func quoted(subjects []string) string {
	var b strings.Builder
	for _, s := range subjects {
		fmt.Fprintf(&b, "    %q\n", s)
	}
	return b.String()
}

// TestClusterAccountsConf: the cluster's accounts configuration in the
// repository is the one the roles' permissions make (so a cluster grants
// what the embedded broker grants), and a NATS server reads it: one user
// per role, each with the role's permissions, in a JetStream account.
func TestClusterAccountsConf(t *testing.T) {
	want := renderAccounts()
	if *update {
		if err := os.WriteFile(accountsConf, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(accountsConf)
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != want {
		t.Fatalf("%s is not what the roles' permissions make: go test ./broker -run TestClusterAccountsConf -update", accountsConf)
	}

	keys := map[string]broker.Role{}
	for _, r := range broker.Roles {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		t.Setenv(nkeyVar(r), pub)
		keys[pub] = r
	}
	t.Setenv("PUSHGO_MAX_FILE", "22GB")
	opts, err := server.ProcessConfigFile(accountsConf)
	if err != nil {
		t.Fatalf("a NATS server does not read %s: %v", accountsConf, err)
	}
	if len(opts.Nkeys) != len(broker.Roles) {
		t.Fatalf("%d users, want one per role (%d)", len(opts.Nkeys), len(broker.Roles))
	}
	for _, u := range opts.Nkeys {
		r, ok := keys[u.Nkey]
		if !ok {
			t.Fatalf("user %s is no role's", u.Nkey)
		}
		if u.Account == nil || u.Account.Name != "PUSHGO" {
			t.Fatalf("%s: account %v, want PUSHGO", r, u.Account)
		}
		p := r.Permissions()
		if p == nil {
			if u.Permissions != nil {
				t.Fatalf("%s: permissions %+v, want none (unrestricted)", r, u.Permissions)
			}
			continue
		}
		if u.Permissions == nil || !slices.Equal(u.Permissions.Publish.Allow, p.Publish.Allow) ||
			!slices.Equal(u.Permissions.Subscribe.Allow, p.Subscribe.Allow) {
			t.Fatalf("%s: the server reads permissions %+v, want %+v", r, u.Permissions, p)
		}
	}
}
