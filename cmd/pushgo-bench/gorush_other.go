//go:build !linux

package main

import "os/exec"

// dieWithParent: only Linux can tie gorush's life to this process; here it
// is ended by stop, or by the context's end.
func dieWithParent(*exec.Cmd) {}
