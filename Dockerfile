# syntax=docker/dockerfile:1
# The image classifier as `npm start` serves it, configured by environment variables (docs/scaling-out.md):
#   docker build -t batchwise .
#   docker run --rm -p 8000:8000 -v "$PWD/../shared/models:/models:ro" batchwise
# Models: mounted at /models (BATCHWISE_MODELS_DIR); or baked in from a folder of the build context
# (--build-arg MODELS=deploy/models, the default, is empty unless you copy model folders there); or, with a network,
# downloaded at startup into /models from the URLs in data/models.json (sha256-checked).

ARG NODE_VERSION=20

# ---- build: dependencies, the native addons (the JPEG path needs a compiler and libjpeg-turbo's headers), src/ compiled ----
FROM node:${NODE_VERSION}-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 libturbojpeg0-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# node-gyp builds against the headers the node image ships instead of downloading them
ENV npm_config_nodedir=/usr/local
# Only what `npm ci` and its postinstall need, so source edits do not invalidate the dependency layer.
# .npmrc skips onnxruntime-node's CUDA download (the CPU provider is bundled).
COPY package.json package-lock.json .npmrc ./
COPY scripts/link-models.mjs scripts/build-native.mjs scripts/
COPY native/binding.gyp native/jpeg_preprocess.c native/latin1_string.c native/
RUN npm ci --no-audit --no-fund \
 && test -f native/build/Release/jpeg_preprocess.node && test -f native/build/Release/latin1_string.node
# Compiled JavaScript, as npm start runs it (from source, tsx adds a module-loader thread per model worker); then the
# compiler and the other development dependencies go.
COPY tsconfig.json tsconfig.build.json ./
COPY src src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime: no compiler, libjpeg-turbo's shared library only, non-root ----
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libturbojpeg0 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/native/build/Release/jpeg_preprocess.node /app/native/build/Release/latin1_string.node native/build/Release/
COPY --from=build /app/dist dist
COPY package.json ./
COPY data/models.json data/
ARG MODELS=deploy/models
COPY --chown=node:node ${MODELS} /models
# A container must listen on all interfaces (batchwise binds 127.0.0.1 unless told otherwise). Every serve option
# also reads BATCHWISE_* (BATCHWISE_WORKERS_PER_DEVICE, BATCHWISE_MAX_BATCH_SIZE, BATCHWISE_DRAIN_PERIOD, …): `docker run -e`.
# MALLOC_ARENA_MAX: glibc's allocator keeps an arena per thread that touched malloc; with worker threads and libuv's
# pool that grew resident memory through a 10-minute soak (+12.6 % first to last window; with 2 arenas, +5.0 %).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    PORT=8000 \
    BATCHWISE_HOST=0.0.0.0 \
    BATCHWISE_MODELS_DIR=/models
USER node
EXPOSE 8000
# Docker's own health state (compose `depends_on: service_healthy`); Kubernetes uses the probes in deploy/ instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# `npm start` without npm in between: SIGTERM reaches the server itself, which drains (probes turn not-ready,
# in-flight and arriving requests are served for BATCHWISE_DRAIN_PERIOD seconds), then exits.
CMD ["node", "dist/cli.js", "serve", "classifier"]
