package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/pushgo/gateway/schemas/streams"
)

// Role is who a connection to the broker is: each pushgo process connects
// with the role of its target, and the broker lets a role publish and
// subscribe to what that service needs and no more. Only ingest (and all,
// which runs ingest) may append to the operations log.
type Role string

const (
	// RoleAll is a process running every service: the union of the three.
	RoleAll Role = "all"
	// RoleIngest appends operations, writes the registries and creates the
	// streams and buckets.
	RoleIngest Role = "ingest"
	// RoleProjector reads the operations and the receipts, and answers the
	// read requests.
	RoleProjector Role = "projector"
	// RolePusher reads the operations and the registries it sends by, and
	// writes the delivery tasks, receipts, inboxes and retired tokens.
	RolePusher Role = "pusher"
	// RoleAdmin is unrestricted: for the operator's nats CLI and for tests,
	// never for a pushgo service.
	RoleAdmin Role = "admin"
)

// Roles are every role, in the order their credentials are listed.
var Roles = []Role{RoleAll, RoleIngest, RoleProjector, RolePusher, RoleAdmin}

// ParseRole returns the role named s (a pushgo target, or admin).
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("broker: unknown role %q", s)
}

// ManagesStreams reports whether the role creates and updates the streams
// and buckets (provision.Ensure); the others wait for them
// (provision.Await).
func (r Role) ManagesStreams() bool { return r == RoleAll || r == RoleIngest || r == RoleAdmin }

// grant is what a role may do with one stream (or a bucket's stream).
type grant uint8

const (
	// read: stream info, message gets, consumers and their acks.
	read grant = 1 << iota
	// write: publish to the stream's subjects.
	write
	// manage: create and update the stream.
	manage
	// remove: delete a message by its sequence (the inbox's acks).
	remove
	// purge: purge a subject's messages up to a sequence (the delete
	// markers of the device registry's buckets, devices.SweepDeleteMarkers;
	// the alert keys of closed Events and emptied group records:
	// ingest/alerts).
	purge
)

// grants is what each service role may do with each stream, by stream
// name (a bucket's stream is KV_<bucket>). RoleAll holds the union.
func grants(r Role) map[string]grant {
	kv := func(bucket string) string { return "KV_" + bucket }
	g := map[string]grant{}
	if r == RoleIngest || r == RoleAll {
		for _, s := range streams.AllStreams(streams.DefaultOptions()) {
			g[s.Name] |= manage
		}
		for _, b := range streams.AllBuckets(streams.DefaultOptions()) {
			g[kv(b.Name)] |= manage | read | write
		}
		g[kv(streams.PushersBucket)] &^= read | write
		// ingest's sweeps purge the device registry's delete markers and
		// the alert keys of closed Events.
		for _, b := range []string{streams.DevicesBucket, streams.ProviderTokensBucket, streams.DeviceChannelsBucket, streams.SubscriptionsBucket, streams.AlertKeysBucket} {
			g[kv(b)] |= purge
		}
		g[streams.Inbox] |= read | remove
		g[streams.Ops] |= read | write
	}
	if r == RoleProjector || r == RoleAll {
		g[streams.Ops] |= read
		g[streams.Receipts] |= read
	}
	if r == RolePusher || r == RoleAll {
		g[streams.Ops] |= read
		g[streams.Deliveries] |= read | write
		g[streams.Receipts] |= write
		g[streams.Inbox] |= write
		for _, b := range []string{streams.DevicesBucket, streams.ProviderTokensBucket, streams.PushersBucket, streams.PartitionFloorsBucket} {
			g[kv(b)] |= read | write
		}
		for _, b := range []string{streams.SubscriptionsBucket, streams.DeviceChannelsBucket} {
			g[kv(b)] |= read
		}
	}
	return g
}

// Streams are the streams (and buckets' streams) the role uses, sorted:
// the ones a role that does not manage them waits for at start.
func (r Role) Streams() []string {
	var out []string
	for name, g := range grants(r) {
		if g&(read|write) != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Permissions are the subjects the role may publish and subscribe to; nil
// (unrestricted) for RoleAdmin.
func (r Role) Permissions() *server.Permissions {
	if r == RoleAdmin {
		return nil
	}
	// Every role: the JetStream account and stream listings (names and
	// settings, no content), and the replies to its own requests.
	pub := []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST"}
	sub := []string{"_INBOX.>"}
	subjects := streamSubjects()
	for name, g := range grants(r) {
		if g != 0 {
			pub = append(pub, "$JS.API.STREAM.INFO."+name)
		}
		if g&manage != 0 {
			pub = append(pub, "$JS.API.STREAM.CREATE."+name, "$JS.API.STREAM.UPDATE."+name)
		}
		if g&write != 0 {
			pub = append(pub, subjects[name]...)
		}
		if g&remove != 0 {
			pub = append(pub, "$JS.API.STREAM.MSG.DELETE."+name)
		}
		if g&purge != 0 {
			pub = append(pub, "$JS.API.STREAM.PURGE."+name)
		}
		if g&read != 0 {
			pub = append(pub,
				"$JS.API.STREAM.MSG.GET."+name, "$JS.API.DIRECT.GET."+name, "$JS.API.DIRECT.GET."+name+".>",
				"$JS.API.CONSUMER.CREATE."+name, "$JS.API.CONSUMER.CREATE."+name+".>",
				"$JS.API.CONSUMER.DURABLE.CREATE."+name+".>", "$JS.API.CONSUMER.INFO."+name+".>",
				"$JS.API.CONSUMER.DELETE."+name+".>", "$JS.API.CONSUMER.NAMES."+name, "$JS.API.CONSUMER.LIST."+name,
				"$JS.API.CONSUMER.MSG.NEXT."+name+".>", "$JS.API.CONSUMER.UNPIN."+name+".>", "$JS.API.CONSUMER.RESET."+name+".>",
				// Acks and flow control replies, in both of the
				// server's subject layouts (the second with domain and
				// account hash).
				"$JS.ACK."+name+".>", "$JS.ACK.*.*."+name+".>", "$JS.FC."+name+".>", "$JS.FC.*.*."+name+".>")
		}
	}
	if r == RoleIngest || r == RoleAll { // read requests to the projectors
		pub = append(pub, readSubjects)
	}
	if r == RoleProjector || r == RoleAll { // answering them
		sub = append(sub, readSubjects)
		pub = append(pub, "_INBOX.>")
	}
	slices.Sort(pub)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: slices.Compact(pub)},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// readSubjects are the read requests ingest forwards to the projectors
// (schemas/reads.SubjectPrefix; restated because schemas/reads is not a
// dependency of the broker).
const readSubjects = "pushgo.read.>"

// streamSubjects are the subjects each stream stores, by stream name.
func streamSubjects() map[string][]string {
	m := map[string][]string{}
	for _, s := range streams.AllStreams(streams.DefaultOptions()) {
		m[s.Name] = s.Subjects
	}
	for _, b := range streams.AllBuckets(streams.DefaultOptions()) {
		m["KV_"+b.Name] = []string{"$KV." + b.Name + ".>"}
	}
	return m
}

// CredentialsFile is the nkey seed file of role r in dir.
func CredentialsFile(dir string, r Role) string { return filepath.Join(dir, string(r)+".nk") }

// credentials are the key pairs of every role, kept as nkey seed files
// (<role>.nk, mode 0600) in one directory.
type credentials struct {
	dir  string
	keys map[Role]nkeys.KeyPair
}

// loadCredentials reads the roles' seeds from dir, generating the missing
// ones (dir is created with mode 0700). A seed is written whole or not at
// all (a temporary file renamed), and is never logged.
func loadCredentials(dir string) (*credentials, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: credentials directory: %w", err)
	}
	c := &credentials{dir: dir, keys: map[Role]nkeys.KeyPair{}}
	for _, r := range Roles {
		kp, err := loadSeed(CredentialsFile(dir, r))
		if err != nil {
			return nil, err
		}
		c.keys[r] = kp
	}
	return c, nil
}

func loadSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return writeSeed(path)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: credentials: %w", err)
	}
	// Whoever loosened the mode, the seed stays readable by the owner only.
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("broker: credentials: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("broker: credentials file %s is not an nkey seed (delete it to generate a new one): %w", path, err)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("broker: credentials file %s does not hold a user seed (delete it to generate a new one)", path)
	}
	return kp, nil
}

func writeSeed(path string) (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("broker: generate credentials: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("broker: generate credentials: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".seed-*")
	if err != nil {
		return nil, fmt.Errorf("broker: write credentials: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	// CreateTemp makes the file 0600 already; say so for the reader.
	err = errors.Join(f.Chmod(0o600), writeAll(f, append(seed, '\n')), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: write credentials %s: %w", path, err)
	}
	return kp, nil
}

func writeAll(f *os.File, b []byte) error {
	_, err := f.Write(b)
	return err
}

// nkeyUsers are the server's users: one per role, known by its public key.
func (c *credentials) nkeyUsers() ([]*server.NkeyUser, error) {
	users := make([]*server.NkeyUser, 0, len(Roles))
	for _, r := range Roles {
		pub, err := c.keys[r].PublicKey()
		if err != nil {
			return nil, fmt.Errorf("broker: credentials of %s: %w", r, err)
		}
		users = append(users, &server.NkeyUser{Nkey: pub, Permissions: r.Permissions()})
	}
	return users, nil
}
