#!/usr/bin/env bash
# Runs scripts/cpu-kinds-check.mjs on this CPU, then on an emulated CPU of the other kind: QEMU's Haswell (AVX2 and
# FMA, no AVX-512, no VNNI — what a Zen 2 offers the int8 kernels). /proc/cpuinfo under qemu-user still describes the
# host, so BATCHWISE_CPUINFO points batchwise at a Zen 2's description. Emulation is slow (about a minute) and its
# timings mean nothing; what it checks is which branch runs and what it answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/apt-install.sh qemu-user
node scripts/build-if-stale.mjs
echo "== native"
node scripts/cpu-kinds-check.mjs "$@"
echo "== emulated: qemu-x86_64 -cpu Haswell (AVX2, no VNNI)"
# the features TCG cannot emulate are switched off, so qemu does not warn about each of them
BATCHWISE_CPUINFO=test/fixtures/cpuinfo/amd-epyc-zen2.txt \
  qemu-x86_64 -cpu Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm "$(command -v node)" scripts/cpu-kinds-check.mjs "$@"
