package bolt

import (
	"os"
	"runtime"
)

// SyncThreads is how many OS threads the store may have waiting in fsync at
// the same moment: the committer syncing its log and the checkpointer
// syncing the file.
//
// A goroutine in a blocking system call keeps its P (the runtime's licence
// to run Go code) until the runtime's monitor notices and hands the P on,
// which takes from tens of microseconds to a few hundred. At high ingest
// the committer is in fdatasync about 40% of the time, so on a two-core
// machine a large share of one core sat idle behind the disk while writers
// waited to run (measured: 144% of 200% CPU used, ~12,000 messages/s; with
// two more Ps, ~15,500/s and a p99 a third lower).
const SyncThreads = 2

// AllowSyncThreads sets GOMAXPROCS to the runtime's default (the cores
// this process may use) plus SyncThreads, so that threads waiting in fsync
// do not hold back the cores, and returns the default and the new value.
// Calling it again changes nothing further. It leaves an operator's own
// GOMAXPROCS setting alone (changed is false). It is for main packages that
// serve from this store: it changes the whole process.
func AllowSyncThreads() (before, after int, changed bool) {
	if os.Getenv("GOMAXPROCS") != "" {
		n := runtime.GOMAXPROCS(0)
		return n, n, false
	}
	runtime.SetDefaultGOMAXPROCS()
	before = runtime.GOMAXPROCS(0)
	after = before + SyncThreads
	runtime.GOMAXPROCS(after)
	return before, after, true
}
