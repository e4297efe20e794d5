#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium, which `renderPng` (src/bench/report/figures/png.ts) uses to export report charts
# as PNG. Optional: without it the benchmark report is still written as HTML and PNG export is skipped with a message.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(chromium --version 2>/dev/null || echo unknown version)"
  exit 0
fi

# --no-install-recommends keeps it to the browser and its libraries (no desktop integration, no fonts beyond deps).
bash "$(dirname "$0")/apt-install.sh" chromium fonts-dejavu-core
chromium --version
