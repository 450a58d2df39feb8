#!/usr/bin/env bash
# Headless Chromium for the docs browser test (tests/test_docs.py), from Debian's packages: Playwright for Python
# drives it through `executable_path`, so no browser download is needed. Installs only where it is missing (~40 s).
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "ensure_chromium: no $CHROMIUM and no apt-get; install Chromium and set CHROMIUM=/path/to/chromium" >&2; exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "ensure_chromium: installing Debian's chromium (+ fonts-liberation for readable screenshots)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
[ -x "$CHROMIUM" ] || { echo "ensure_chromium: apt-get did not provide $CHROMIUM" >&2; exit 1; }
