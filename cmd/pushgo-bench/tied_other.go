//go:build !linux

package main

import "os/exec"

// startTied starts cmd. Only Linux can tie a child's life to this process;
// here it is ended by its stop, or by the context's end.
func startTied(cmd *exec.Cmd) error { return cmd.Start() }
