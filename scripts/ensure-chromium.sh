#!/bin/sh
# Installs Debian's Chromium for the browser tests when it is missing.
# Without root (or apt-get) it says so and lets the tests decide: they skip
# locally and fail in CI (CI=true).
set -e
for b in chromium chromium-browser google-chrome; do
	command -v "$b" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing chromium for the browser tests…"
	apt-get update -qq && apt-get install -y -qq chromium >/dev/null
	exit 0
fi
echo "chromium is missing and cannot be installed here (need root and apt-get): browser tests will skip (fail with CI=true)" >&2
