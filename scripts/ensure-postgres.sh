#!/bin/sh
# Installs Debian's PostgreSQL server for the PostgreSQL store's tests when
# it is missing (the tests start a throwaway cluster of their own; nothing
# needs to be running). Without root (or apt-get) it says so and lets the
# tests decide: they skip locally and fail in CI (CI=true).
set -e
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/initdb" ] && [ -x "$d/postgres" ] && exit 0
done
command -v initdb >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing postgresql for the PostgreSQL store tests…"
	apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
	exit 0
fi
echo "postgresql is missing and cannot be installed here (need root and apt-get): PostgreSQL tests will skip (fail with CI=true)" >&2
