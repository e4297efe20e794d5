/**
 * Entry of a model worker thread: loads the API from its source, runs setup on its device, then runs one batch at a
 * time. Inference blocks this thread, never the HTTP event loop.
 */
import { parentPort } from "node:worker_threads";
import { LOG_SINK, type AnyModelAPI, type Device } from "../api/model-api.js";
import { loadApi } from "./api-source.js";
import { loadCallback, predictHooks } from "./callbacks.js";
import { errorDetail } from "./failure-log.js";
import { runPredict, type PredictSite } from "./predict-run.js";
import { itemError, type ItemError } from "./run-batch.js";
import type { LoggedValue } from "./user-metrics.js";
import { transferables, type FromWorker, type RunChunk, type ToWorker } from "./worker-protocol.js";

if (!parentPort) throw new Error("worker.ts must run in a worker thread");
const port = parentPort;
const send = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

let api: AnyModelAPI | undefined;
let device: Device | undefined;
let site: PredictSite = { endpoint: "", workerId: -1, hooks: {} };
const running = new Map<number, AbortController[]>();

/**
 * Chunks wait here until the work that produced them is done: a nextTick runs once the microtasks have drained, i.e.
 * after every run fed by the same step (an engine step wakes all its runs at once) has emitted. Then one message.
 *
 * And while the main thread has not yet handled the previous message (it acknowledges once it has written what that
 * message carried), new chunks keep waiting and then go together: a main thread that falls behind a fast model gets
 * several steps per stream in one message, which its SSE encoder merges into one write per client. A main thread
 * that keeps up gets every step at once, so nothing waits when nothing is behind (the first output never waits).
 */
let pendingChunks: RunChunk[] = [];
let pendingTransfer = new Set<ArrayBuffer>(); // a buffer listed twice would fail the whole message
let unacknowledged = false;
const sendChunk = (chunk: RunChunk) => {
  if (pendingChunks.length === 0) process.nextTick(flushChunks);
  pendingChunks.push(chunk);
  for (const buffer of transferables(chunk.outputs)) pendingTransfer.add(buffer);
};
/** Send the waiting chunks, unless the main thread is still on the last message (`force`: a result follows them). */
function flushChunks(force = false) {
  if (pendingChunks.length === 0 || (unacknowledged && !force)) return;
  unacknowledged = true;
  const chunks = pendingChunks;
  const transfer = pendingTransfer;
  pendingChunks = [];
  pendingTransfer = new Set();
  try {
    send({ type: "chunks", chunks }, [...transfer]);
  } catch {
    // An output that cannot be cloned fails its own run (as a throw from predict would), not its neighbours'.
    for (const chunk of chunks) {
      try {
        send({ type: "chunks", chunks: [chunk] }, transferables(chunk.outputs));
      } catch (error) {
        if (!unsendable.has(chunk.id)) unsendable.set(chunk.id, itemError(error));
        running.get(chunk.id)?.forEach((controller) => controller.abort());
      }
    }
  }
}
/** Runs with an output that could not be sent, and why: their result reports it. */
const unsendable = new Map<number, ItemError>();

/** The API's `log()` values of one turn go to the main thread in one message. */
let logged: LoggedValue[] = [];
function logValue(name: string, value: number, labels?: Record<string, string>) {
  if (logged.length === 0) process.nextTick(flushLogs);
  logged.push([name, value, labels]);
}
function flushLogs() {
  if (logged.length === 0) return;
  const values = logged;
  logged = [];
  try {
    send({ type: "logs", values });
  } catch (error) {
    send({ type: "callback-error", hook: "log", message: errorDetail(error).message });
  }
}
const callbackFailed = (hook: string, error: unknown) => send({ type: "callback-error", hook, message: errorDetail(error).message });

/** Load the API and the callbacks given by module, run setup, then onWorkerSetup. */
async function setup(message: Extract<ToWorker, { type: "setup" }>) {
  api = await loadApi(message.source);
  (api as { [LOG_SINK]?: typeof logValue })[LOG_SINK] = logValue;
  device = message.device;
  const callbacks = await Promise.all(message.callbacks.map(loadCallback));
  site = { endpoint: message.endpoint, workerId: message.ctx.workerId, hooks: predictHooks(callbacks, callbackFailed) };
  await api.setup(message.device, message.ctx);
  const setupDone = site.hooks.onWorkerSetup?.({ endpoint: site.endpoint, workerId: site.workerId, device: message.device });
  if (setupDone) await setupDone;
}

port.on("message", async (message: ToWorker) => {
  if (message.type === "setup") {
    // `--enable-source-maps` reaches workers through execArgv; process.setSourceMapsEnabled(true) in the user's main
    // file does not (it is per thread): without this, a compiled API's stacks logged from here name its .js files.
    if (message.sourceMaps && !process.sourceMapsEnabled) process.setSourceMapsEnabled(true);
    try {
      await setup(message);
      send({ type: "ready", info: api!.info ?? {} });
    } catch (error) {
      send({ type: "setup-failed", error: errorDetail(error) }); // its stack, for the server's log
    }
  } else if (message.type === "health") {
    // The API's own check runs on the instance that ran setup (it knows whether its model is still usable).
    let ok = api !== undefined;
    try {
      if (api?.health) ok = (await api.health()) === true;
    } catch {
      ok = false;
    }
    send({ type: "health", id: message.id, ok });
  } else if (message.type === "chunks-handled") {
    unacknowledged = false;
    flushChunks();
  } else if (message.type === "cancel") {
    running.get(message.id)?.[message.index]?.abort();
  } else if (message.type === "run") {
    const controllers = message.inputs.map(() => new AbortController());
    running.set(message.id, controllers);
    const ctx = { signals: controllers.map((c) => c.signal), device: device!, traceparents: message.traceparents };
    const emit = (outputs: unknown[], indexes: number[], ended: number[]) =>
      sendChunk({ id: message.id, outputs, indexes, ...(ended.length ? { ended } : {}) });
    let outcome = await runPredict(api!, message.inputs, ctx, site, message.stream, emit, message.requestIds);
    running.delete(message.id);
    flushChunks(true); // a run's outputs go before its result
    flushLogs(); // and so do its logged values: a client that has its answer finds them in /metrics
    const failure = unsendable.get(message.id);
    if (failure !== undefined) {
      unsendable.delete(message.id);
      outcome = { outputs: [], errors: message.inputs.map(() => failure) };
    }
    send({ type: "result", id: message.id, ...outcome }, transferables(outcome.outputs));
  }
});
