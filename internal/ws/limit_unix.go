//go:build unix

package ws

import "syscall"

// DefaultMaxSockets is the open-file limit less a reserve of a tenth of it
// (at least 1,024) for what is not a socket: the store's files and
// connections, calls to providers, HTTP requests, media files. Go raises
// the soft limit to the hard one at start, so this is the hard limit's
// share. Zero (no cap) when the limit cannot be read or is too small to
// reserve from.
func DefaultMaxSockets() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return socketsWithin(lim.Cur)
}
