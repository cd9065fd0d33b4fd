#!/usr/bin/env bash
# Install Debian's headless browser for the browser tests: chromium + chromium-driver.
# Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver already exist.
# Runs as root, or through sudo when not root.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver already installed: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "error: installing chromium needs root (fix: run this script as root or install sudo)" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core

/usr/bin/chromium --version
/usr/bin/chromedriver --version
