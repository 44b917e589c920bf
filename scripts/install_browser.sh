#!/bin/sh
# Debian's Chromium for the dashboard's browser tests (tests/dashboard/test_browser.py), which
# Playwright (a dev dependency) drives; Playwright's own browser download is not used.
# Does nothing when /usr/bin/chromium is there already.
set -eu
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install_browser: no apt-get here; install Chromium at $CHROMIUM for the browser tests" >&2
	exit 1
fi
echo "installing Debian's chromium for the dashboard's browser tests"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
	{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
test -x "$CHROMIUM"
