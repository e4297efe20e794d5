#!/usr/bin/env bash
# What a lent GPU machine runs (16 cores, one NVIDIA GPU; ≤ 10 minutes), printing what it finds:
#   1. the machine: cores, CPU line, GPUs;
#   2. the classifier on each onnxruntime GPU provider that loads (WebGPU through Vulkan; CUDA where its provider
#      libraries were installed): fp32, fp16 and what auto picks, agreement with CPU fp32, images/s at batch 64;
#   3. `npm start` at c=64 with 1/2/4/8/16 workers (and 2 API servers at 16 workers): images/s and server CPU%,
#      to see where it stops scaling;
#   4. notebooks 02–05 in quick mode, where Jupyter is installed.
# Needs node_modules and dist/ built (the machine may reach no registry) and the models (BATCHWISE_MODELS_DIR).
# Usage: bash scripts/device-check.sh [OUT_DIR]   (results: OUT_DIR/*.json and the printed log)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-reports/device-check}}"
mkdir -p "$out"
export BATCHWISE_MODELS_DIR="${BATCHWISE_MODELS_DIR:-$(cd .. && pwd)/shared/models}"
images="${BATCHWISE_IMAGES:-$(dirname "$BATCHWISE_MODELS_DIR")/images}"
node scripts/build-if-stale.mjs

echo "== machine"
echo "cores: $(nproc)"
node -e 'import("./dist/runtime/cpu-features.js").then((m) => console.log("CPU: " + m.describeCpu()))'
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none"

echo "== classifier on the GPU providers"
timeout 180 node scripts/device-classify.mjs "$images" || echo "device-classify: failed or timed out"

echo "== npm start at c=64 by workers"
port=8123
for setup in "1 1" "2 1" "4 1" "8 1" "16 1" "16 2"; do
  set -- $setup
  workers=$1 servers=$2
  [ "$workers" -gt "$(nproc)" ] && continue
  UV_THREADPOOL_SIZE=$(nproc) node dist/cli.js serve classifier --port $port --workers $((workers / servers)) --api-servers "$servers" \
    --accelerator cpu > "$out/serve-$workers-$servers.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
  echo "-- $workers worker(s) in $servers API server(s)"
  timeout 150 node dist/cli.js bench api --url "http://127.0.0.1:$port" --concurrency 64 --requests 1024 --body binary \
    --images "$images" --server-pid "$pid" --json "$out/api-$workers-$servers.json" | tail -n 4
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
done

echo "== notebooks 02-05 (quick)"
if [ -f .jupyter/kernels/tslab/kernel.json ]; then
  BATCHWISE_QUICK=1 timeout 240 bash scripts/run-notebooks.sh notebooks/0[2-5]-*.ipynb || echo "notebooks: failed or timed out"
else
  echo "no Jupyter on this machine: notebooks skipped (scripts/notebooks-setup.sh installs it where apt reaches Debian)"
fi
