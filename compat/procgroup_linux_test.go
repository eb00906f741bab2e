package compat

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the child get SIGKILL if the test process dies first
// (a crash, a kill), so no cluster or suite process outlives it.
func dieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// killGroupOnCancel runs the child in a process group of its own and makes
// the command's cancellation kill the whole group: `go test` runs the test
// binary as its own child, which would outlive a killed go command.
func killGroupOnCancel(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
