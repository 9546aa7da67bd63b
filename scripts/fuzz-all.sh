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
exit $status
