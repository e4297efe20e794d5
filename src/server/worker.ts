/**
 * Entry of a model worker thread: loads the API from its source, runs setup on its device, then runs one batch at a
 * time. Inference blocks this thread, never the HTTP event loop.
 */
import { parentPort } from "node:worker_threads";
import type { Device, ModelAPI } from "../api.js";
import { loadApi } from "./api-source.js";
import { messageOf, runBatch, runStream } from "./run-batch.js";
import { transferables, type FromWorker, type ToWorker } from "./worker-protocol.js";

if (!parentPort) throw new Error("worker.ts must run in a worker thread");
const port = parentPort;
const send = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

let api: ModelAPI | undefined;
let device: Device | undefined;
const running = new Map<number, AbortController[]>();

port.on("message", async (message: ToWorker) => {
  if (message.type === "setup") {
    try {
      api = await loadApi(message.source);
      device = message.device;
      await api.setup(message.device, message.ctx);
      send({ type: "ready", info: api.info ?? {} });
    } catch (error) {
      send({ type: "setup-failed", message: messageOf(error) });
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
  } else if (message.type === "cancel") {
    running.get(message.id)?.[message.index]?.abort();
  } else if (message.type === "run") {
    const controllers = message.inputs.map(() => new AbortController());
    running.set(message.id, controllers);
    const ctx = { signals: controllers.map((c) => c.signal), device: device! };
    const outcome = message.stream
      ? await runStream(api!, message.inputs, ctx, (outputs, indexes) =>
          send({ type: "chunk", id: message.id, outputs, indexes }, transferables(outputs)))
      : await runBatch(api!, message.inputs, ctx);
    running.delete(message.id);
    send({ type: "result", id: message.id, ...outcome }, transferables(outcome.outputs));
  }
});
