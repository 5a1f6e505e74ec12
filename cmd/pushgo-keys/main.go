// Command pushgo-keys makes the broker credentials of a deployment on a
// NATS cluster (compose.yaml): one nkey user per pushgo role. It writes
// each role's seed to <dir>/<role>.nk (give it to that role's processes
// as PUSHGO_NATS_CREDS) and the public keys to <dir>/nkeys.env
// (PUSHGO_NKEY_<ROLE>=U...), which the NATS servers read for
// deploy/nats/accounts.conf. Existing files are kept: run it again and
// nothing changes; delete the directory to rotate.
//
// The directory is 0700 and the seeds 0644: Docker Compose hands a file
// secret to a container as a bind mount with the host file's owner and
// mode, and the pushgo image runs as its own non-root user (uid 10001),
// which a 0600 seed owned by the operator would shut out. Other users of
// the host are kept out by the directory, which they cannot enter.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/pushgo/gateway/broker"
)

func main() {
	dir, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushgo-keys:", err)
		os.Exit(2)
	}
	if err := run(dir); err != nil {
		fmt.Fprintln(os.Stderr, "pushgo-keys:", err)
		os.Exit(1)
	}
}

// parseArgs reads the flags; an argument that is no flag is refused (flag
// stops at it, so "pushgo-keys deploy/keys2" wrote deploy/keys).
func parseArgs(args []string) (string, error) {
	fs := flag.NewFlagSet("pushgo-keys", flag.ContinueOnError)
	dir := fs.String("dir", "deploy/keys", "directory for the seeds and nkeys.env")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q (the directory is -dir DIR)", fs.Arg(0))
	}
	return *dir, nil
}

// writeFileAtomic writes path through a temporary file renamed over it,
// so an interrupted run leaves the file whole or absent, never truncated.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	var env strings.Builder
	for _, r := range broker.Roles {
		path := broker.CredentialsFile(dir, r)
		seed, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			kp, cerr := nkeys.CreateUser()
			if cerr != nil {
				return cerr
			}
			if seed, err = kp.Seed(); err != nil {
				return err
			}
			err = writeFileAtomic(path, append(seed, '\n'), 0o644)
		}
		if err == nil {
			// Seeds made by an older version were 0600.
			err = os.Chmod(path, 0o644)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		kp, err := nkeys.ParseDecoratedNKey(seed)
		if err != nil {
			return fmt.Errorf("%s: %w (not a seed: delete it and run again to make a new one, then restart the NATS servers with the new nkeys.env)", path, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return err
		}
		fmt.Fprintf(&env, "PUSHGO_NKEY_%s=%s\n", strings.ToUpper(string(r)), pub)
	}
	out := filepath.Join(dir, "nkeys.env")
	if err := writeFileAtomic(out, []byte(env.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("seeds in %s/<role>.nk, public keys in %s\n", dir, out)
	return nil
}
