#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium, which `renderPng` (src/plot/plotly.ts) uses to export report charts
# as PNG. Optional: without it the benchmark report is still written as HTML and PNG export is skipped with a message.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(chromium --version 2>/dev/null || echo unknown version)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

$SUDO apt-get update -qq
# --no-install-recommends keeps it to the browser and its libraries (no desktop integration, no fonts beyond deps).
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
chromium --version
