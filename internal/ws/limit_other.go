//go:build !unix

package ws

// DefaultMaxSockets is zero (no cap) where the open-file limit cannot be
// read.
func DefaultMaxSockets() int { return 0 }
