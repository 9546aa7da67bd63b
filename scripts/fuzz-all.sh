#!/bin/sh
# Runs every Go fuzz target in the module for FUZZTIME each (default 60s),
# one after another, and prints a table of executions per target. Targets
# are found by their declarations, so a new one is included without
# editing this file. `make fuzz` runs it at length and `make test` briefly
# (TESTFUZZTIME). Exits non-zero if any target fails.
set -u
FUZZTIME="${FUZZTIME:-60s}"
GO="${GO:-go}"
out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT
status=0
races=0

# deadline_race tells the coordinator's end-of-time report from a real
# failure: a real one writes its input to testdata/fuzz, panics or fails
# the target with its own message.
deadline_race() {
	grep -q 'context deadline exceeded' "$1" &&
		! grep -q -e 'Failing input written' -e 'panic:' -e '_test.go:[0-9]' "$1"
}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //' | while read -r target; do
		echo "$pkg $target"
	done
done | sort -u > "$out"
printf '%-40s %-28s %14s %10s  %s\n' package target executions per-second result
while read -r pkg target; do
	start=$(date +%s)
	if $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" > "$log" 2>&1; then
		result=ok
	elif deadline_race "$log"; then
		# Go's fuzz coordinator can report its own -fuzztime deadline as a
		# failure when a worker is mid-input as time runs out on a busy
		# machine (go.dev/issue/75804, fixed in Go 1.27). Nothing failed:
		# no input was written and the target only hit the end of its time.
		result=ok*
		races=$((races + 1))
	else
		result=FAIL
		status=1
	fi
	secs=$(( $(date +%s) - start ))
	# fuzz: elapsed: 60s, execs: 123456 (2057/sec), new interesting: ...
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | sed 's/execs: //')
	elapsed=$(grep -o 'elapsed: [0-9]*s, execs' "$log" | tail -1 | sed 's/elapsed: \([0-9]*\)s.*/\1/')
	rate=
	if [ -n "$execs" ] && [ -n "$elapsed" ] && [ "$elapsed" -gt 0 ]; then
		rate=$(( execs / elapsed ))
	fi
	printf '%-40s %-28s %14s %10s  %s (%ss)\n' "$pkg" "$target" "${execs:-?}" "${rate:-?}" "$result" "$secs"
	if [ "$result" = FAIL ]; then
		sed 's/^/    /' "$log" | tail -30
	fi
done < "$out"
if [ "$races" -gt 0 ]; then
	echo "ok*: the run ended with Go's fuzz-time deadline report (go.dev/issue/75804), no failing input"
fi
exit $status
