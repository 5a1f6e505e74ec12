package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// debianChromium is where Debian's chromium package puts the browser.
const debianChromium = "/usr/bin/chromium"

var chromium struct {
	once sync.Once
	path string
	err  error
}

// chromiumPath is the Chromium the browser tests drive: PUSHGO_CHROMIUM
// when set, else Debian's, which it installs (apt-get install -y chromium,
// through sudo -n when not root, after apt-get update if the first try
// fails) when it is missing. It fails the test, with what to do, when it
// cannot: the console's browser test is part of make test, never skipped.
func chromiumPath(t *testing.T) string {
	t.Helper()
	chromium.once.Do(func() { chromium.path, chromium.err = findChromium() })
	if chromium.err != nil {
		t.Fatalf("the console's browser test needs Chromium: %v", chromium.err)
	}
	return chromium.path
}

func findChromium() (string, error) {
	if p := os.Getenv("PUSHGO_CHROMIUM"); p != "" {
		if !executable(p) {
			return "", fmt.Errorf("PUSHGO_CHROMIUM=%s is not an executable file", p)
		}
		return p, nil
	}
	if executable(debianChromium) {
		return debianChromium, nil
	}
	apt := []string{"apt-get"}
	if os.Geteuid() != 0 {
		apt = []string{"sudo", "-n", "apt-get"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, apt[0], append(apt[1:], args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("`%s %s` failed: %v\n%s", strings.Join(apt, " "), strings.Join(args, " "), err, tail(string(out), 2000))
		}
		return nil
	}
	fmt.Fprintf(os.Stderr, "e2e: %s is missing; installing Debian's chromium package\n", debianChromium)
	err := run("install", "-y", "chromium")
	if err != nil {
		if uerr := run("update"); uerr != nil {
			err = fmt.Errorf("%w\nthen %w", err, uerr)
		} else {
			err = run("install", "-y", "chromium")
		}
	}
	if err == nil && !executable(debianChromium) {
		err = fmt.Errorf("apt-get installed chromium but %s is not there", debianChromium)
	}
	if err != nil {
		return "", fmt.Errorf("%s is missing and could not be installed: %w\n"+
			"Install Debian's chromium package (as root: apt-get install -y chromium), or set PUSHGO_CHROMIUM to a Chromium or Chrome binary", debianChromium, err)
	}
	return debianChromium, nil
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
