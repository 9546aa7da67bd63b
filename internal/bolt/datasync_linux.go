package bolt

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data and the metadata needed to read it back
// (its size), which is all a log append needs.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
