//go:build !linux

package loadtest

import "os/exec"

// dieWithParent is best effort off Linux: children still stop when their
// stdin closes (workers) or when the tool kills them on the way out.
func dieWithParent(cmd *exec.Cmd) {}
