//go:build !linux

package compat

import "os/exec"

// dieWithTest is Linux's parent-death signal; elsewhere a child may outlive
// a test process that crashes.
func dieWithTest(*exec.Cmd) {}

// killGroupOnCancel leaves the command's default cancellation (killing the
// child alone) where process groups are not set up here.
func killGroupOnCancel(*exec.Cmd) {}
