import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker, type ResourceLimits } from "node:worker_threads";
import type { ApiSource, Device, ModelAPI, SetupContext } from "../api/model-api.js";
import type { CallbackSource, PredictHooks } from "./callbacks.js";
import type { Cancellation } from "./cancellation.js";
import { errors, HttpError } from "../api/errors.js";
import { setupError } from "./failure-log.js";
import { runPredict } from "./predict-run.js";
import type { BatchOutcome } from "./run-batch.js";
import { transferables, type FromWorker, type ToWorker, type WorkerReport } from "./worker-protocol.js";

/** Outputs of a streaming run's step, by input index; `ended`: inputs whose streams closed at this step. */
export type ChunkListener = (outputs: unknown[], indexes: number[], ended?: number[]) => void;

/** What a run carries beside its inputs, only when something needs it (one entry per input). */
export interface RunMeta {
  /** For predict-side callbacks. */
  requestIds?: string[];
  /** For the model (PredictContext.traceparents). */
  traceparents?: (string | undefined)[];
}

/** One model instance that runs one batch at a time: a worker thread, or the main thread itself. */
export interface Runner {
  readonly id: number;
  readonly device: Device;
  /** Run a batch; resolves with per-item outputs/errors, rejects (HttpError 500) if the runner died. */
  run(inputs: unknown[], cancellations: Cancellation[], onChunk?: ChunkListener, meta?: RunMeta): Promise<BatchOutcome>;
  /** The API's own health() where the model lives (true when it has none). */
  health(): Promise<boolean>;
  terminate(): Promise<void>;
}

export interface WorkerPoolOptions {
  /** Where workers load the API from. */
  source?: ApiSource;
  /** An API instance to run on the main thread (workersPerDevice: 0). */
  inline?: ModelAPI;
  /** One entry per runner. */
  devices: Device[];
  setupContext: Omit<SetupContext, "workerId">;
  stream: boolean;
  /**
   * V8 heap limits of each worker thread. A worker past its limit stops with ERR_WORKER_OUT_OF_MEMORY and is
   * replaced like a crashed one; without a limit a runaway model may grow to the process's whole heap size.
   */
  resourceLimits?: ResourceLimits;
  /**
   * Batches one runner may hold at once. 1 (the default) suits models whose predict blocks the worker. A generator
   * that interleaves its work (an LLM decode loop that lets new sequences join at the next step) gets new requests
   * without waiting for the running generation to finish when this is larger.
   */
  maxBatchesPerWorker?: number;
  /**
   * Seconds a worker may go without answering a batch (a streaming one: between two outputs) before it is taken
   * for hung: stopped and replaced, its requests failed with 504. Undefined: no limit. Worker threads only.
   */
  predictTimeout?: number;
  /** predict may run twice for one request (a request whose worker died may be retried). */
  idempotent?: boolean;
  /** Called whenever a runner becomes idle or ready, so the batcher can dispatch. */
  onIdle: () => void;
  log: (message: string) => void;
  /** Callbacks around predict, and where workers report logged values (see callbacks.ts, user-metrics.ts). */
  extensions?: PoolExtensions;
}

export interface PoolExtensions {
  endpoint: string;
  /** The callbacks each worker imports. */
  callbacks: CallbackSource[];
  /** The predict-side hooks of the main thread's own callbacks, for the in-process runner. */
  predict: PredictHooks;
  /** Send each batch's request ids to the runner (a predict-side callback reads them). */
  requestIds: boolean;
  report(message: WorkerReport): void;
}

const NO_EXTENSIONS: PoolExtensions = { endpoint: "", callbacks: [], predict: {}, requestIds: false, report: () => {} };

/**
 * Owns the runners of one endpoint: starts them, tracks which are idle, replaces a worker that dies (its requests
 * fail fast with a 500 instead of hanging).
 */
export class WorkerPool {
  /** Runners that can take another batch; the least loaded are at the end (taken first). */
  private readonly idle: Runner[] = [];
  private readonly inFlight = new Map<Runner, number>();
  private readonly runners = new Set<Runner>();
  private busy = 0;
  private closing = false;
  private startedCount = 0;
  info: Record<string, unknown> = {};
  restarts = 0;

  constructor(private readonly options: WorkerPoolOptions) {}

  get size() {
    return this.options.devices.length;
  }
  get readyCount() {
    return this.runners.size;
  }
  get busyCount() {
    return this.busy;
  }
  /** A runner may take a new batch while it runs others (its API interleaves them, e.g. continuous batching). */
  get admitsIntoRunning() {
    return (this.options.maxBatchesPerWorker ?? 1) > 1;
  }

  /** Start every runner; rejects with the setup error if any fails (no half-alive server). */
  async start(): Promise<void> {
    await Promise.all(this.options.devices.map((device, i) => this.startRunner(i, device)));
  }

  /** Take an idle runner, or undefined if all are busy or not ready. */
  take(): Runner | undefined {
    const runner = this.idle.pop();
    if (!runner) return undefined;
    this.busy++;
    const batches = (this.inFlight.get(runner) ?? 0) + 1;
    this.inFlight.set(runner, batches);
    if (batches < (this.options.maxBatchesPerWorker ?? 1)) this.idle.unshift(runner);
    return runner;
  }

  /** Whether {@link run} wants each batch's request ids. */
  get wantsRequestIds() {
    return this.options.extensions?.requestIds === true;
  }

  /** Run a batch on a runner taken with take(); the runner returns to the idle set afterwards. */
  async run(runner: Runner, inputs: unknown[], cancellations: Cancellation[], onChunk?: ChunkListener, meta?: RunMeta) {
    try {
      return await runner.run(inputs, cancellations, onChunk, meta);
    } finally {
      this.busy--;
      this.inFlight.set(runner, (this.inFlight.get(runner) ?? 1) - 1);
      if (this.runners.has(runner) && !this.idle.includes(runner)) this.idle.push(runner);
      this.options.onIdle();
    }
  }

  /** Every ready runner's API reports healthy (an API without health() always does). */
  async healthy(): Promise<boolean> {
    const answers = await Promise.all([...this.runners].map((r) => r.health()));
    return answers.every(Boolean);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.runners].map((r) => r.terminate()));
    this.runners.clear();
    this.idle.length = 0;
  }

  private async startRunner(id: number, device: Device): Promise<void> {
    const ctx: SetupContext = { ...this.options.setupContext, workerId: this.options.inline ? -1 : id };
    const extensions = this.options.extensions ?? NO_EXTENSIONS;
    const runner: Runner = this.options.inline
      ? await InlineRunner.start(id, this.options.inline, device, ctx, this.options.stream, extensions)
      : await ThreadRunner.start(id, this.options.source!, device, ctx, { ...this.options, extensions }, (reason) =>
          this.replace(runner, id, device, reason));
    if (this.closing) return void (await runner.terminate());
    this.info = runner instanceof ThreadRunner ? runner.info : this.options.inline!.info ?? {};
    this.runners.add(runner);
    this.idle.push(runner);
    this.startedCount++;
    this.options.onIdle();
  }

  private replace(dead: Runner, id: number, device: Device, reason: string) {
    this.runners.delete(dead);
    this.inFlight.delete(dead);
    const index = this.idle.indexOf(dead);
    if (index >= 0) this.idle.splice(index, 1);
    if (this.closing) return;
    this.restarts++;
    this.options.log(`worker ${id} stopped unexpectedly (${reason}); starting a replacement`);
    this.startRunner(id, device).catch((error) => {
      this.options.log(`replacement for worker ${id} failed: ${(error as Error).stack ?? (error as Error).message}`);
    });
  }
}

/** The API on the main thread: for quick experiments and APIs defined where a worker cannot load them. */
class InlineRunner implements Runner {
  private constructor(
    readonly id: number,
    readonly device: Device,
    private api: ModelAPI,
    private stream: boolean,
    private site: { endpoint: string; workerId: number; hooks: PredictHooks },
  ) {}

  static async start(id: number, api: ModelAPI, device: Device, ctx: SetupContext, stream: boolean, extensions: PoolExtensions) {
    await api.setup(device, ctx);
    const site = { endpoint: extensions.endpoint, workerId: -1, hooks: extensions.predict };
    const setupDone = site.hooks.onWorkerSetup?.({ endpoint: site.endpoint, workerId: -1, device });
    if (setupDone) await setupDone;
    return new InlineRunner(id, device, api, stream, site);
  }

  run(inputs: unknown[], cancellations: Cancellation[], onChunk?: ChunkListener, meta?: RunMeta): Promise<BatchOutcome> {
    const ctx = { signals: cancellations.map((cancellation) => cancellation.signal), device: this.device, traceparents: meta?.traceparents };
    return runPredict(this.api, inputs, ctx, this.site, this.stream, onChunk ?? (() => {}), meta?.requestIds);
  }

  async health() {
    try {
      return this.api.health ? (await this.api.health()) === true : true;
    } catch {
      return false;
    }
  }

  async terminate() {}
}

interface PendingRun {
  resolve: (outcome: BatchOutcome) => void;
  reject: (error: HttpError) => void;
  onChunk?: ChunkListener;
  /** Fires when the worker has not answered this run for predictTimeout. */
  watchdog?: NodeJS.Timeout;
}

/** A worker thread that owns one model instance. */
class ThreadRunner implements Runner {
  private nextId = 1;
  private pending = new Map<number, PendingRun>();
  private healthChecks = new Map<number, (ok: boolean) => void>();
  private terminating = false;
  /** Stops a worker that went predictTimeout without answering (set by start, which owns the death handling). */
  private hung: () => void = () => {};
  info: Record<string, unknown> = {};

  private constructor(
    readonly id: number,
    readonly device: Device,
    private worker: Worker,
    private stream: boolean,
    private predictTimeoutMs: number | undefined,
  ) {}

  static start(
    id: number,
    source: ApiSource,
    device: Device,
    ctx: SetupContext,
    limits: { stream: boolean; resourceLimits?: ResourceLimits; predictTimeout?: number; extensions: PoolExtensions },
    onDeath: (reason: string) => void,
  ) {
    const worker = spawnWorker(limits.resourceLimits, source.module);
    const timeoutMs = limits.predictTimeout === undefined ? undefined : limits.predictTimeout * 1000;
    const runner = new ThreadRunner(id, device, worker, limits.stream, timeoutMs);
    return new Promise<ThreadRunner>((resolve, reject) => {
      let ready = false;
      worker.on("message", (message: FromWorker) => {
        if (message.type === "ready") {
          ready = true;
          runner.info = message.info;
          resolve(runner);
        } else if (message.type === "setup-failed") {
          runner.terminating = true;
          void worker.terminate();
          reject(setupError(`worker ${id} (${device.id})`, message.error));
        } else if (message.type === "logs" || message.type === "callback-error") {
          limits.extensions.report(message);
        } else {
          runner.receive(message);
        }
      });
      const die = (reason: string, error: HttpError = new HttpError("worker_crashed")) => {
        if (runner.terminating) return;
        runner.terminating = true;
        void worker.terminate(); // also interrupts JavaScript stuck in a loop; native code stops when it returns
        runner.failPending(error);
        if (!ready) reject(new Error(`worker ${id} stopped during setup: ${reason}`));
        else onDeath(reason);
      };
      runner.hung = () => die(`no answer within ${limits.predictTimeout} s`, errors.predictTimeout(limits.predictTimeout!));
      worker.on("error", (error) => die(error.message));
      worker.on("exit", (code) => die(`exit code ${code}`));
      const { endpoint, callbacks } = limits.extensions;
      worker.postMessage({ type: "setup", source, device, ctx, sourceMaps: process.sourceMapsEnabled, endpoint, callbacks } satisfies ToWorker);
    });
  }

  run(inputs: unknown[], cancellations: Cancellation[], onChunk?: ChunkListener, meta?: RunMeta): Promise<BatchOutcome> {
    if (this.terminating) return Promise.reject(new HttpError("worker_crashed"));
    const id = this.nextId++;
    const cancels = cancellations.map((cancellation, index) =>
      cancellation.onAbort(() => this.worker.postMessage({ type: "cancel", id, index } satisfies ToWorker)),
    );
    return new Promise<BatchOutcome>((resolve, reject) => {
      const run: PendingRun = { resolve, reject, onChunk };
      this.pending.set(id, run);
      this.armWatchdog(run);
      try {
        const { requestIds, traceparents } = meta ?? {};
        this.worker.postMessage({ type: "run", id, inputs, stream: this.stream, requestIds, traceparents } satisfies ToWorker, transferables(inputs));
      } catch (error) {
        // An input that cannot be cloned (DataCloneError, stack overflow): this run never reaches the worker.
        this.forget(id);
        throw error;
      }
    }).finally(() => cancels.forEach((remove) => remove()));
  }

  /** Ask the worker's API; a worker that does not answer within a second (busy in a long batch) counts as healthy. */
  health(): Promise<boolean> {
    if (this.terminating) return Promise.resolve(false);
    const id = this.nextId++;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => answer(true), 1000);
      const answer = (ok: boolean) => {
        clearTimeout(timer);
        this.healthChecks.delete(id);
        resolve(ok);
      };
      this.healthChecks.set(id, answer);
      this.worker.postMessage({ type: "health", id } satisfies ToWorker);
    });
  }

  /** (Re)start a run's hang timer: when it is sent, and on each output of a streaming run. */
  private armWatchdog(run: PendingRun) {
    if (this.predictTimeoutMs === undefined) return;
    clearTimeout(run.watchdog);
    run.watchdog = setTimeout(this.hung, this.predictTimeoutMs);
  }

  private forget(id: number): PendingRun | undefined {
    const run = this.pending.get(id);
    clearTimeout(run?.watchdog);
    this.pending.delete(id);
    return run;
  }

  private receive(message: FromWorker) {
    if (message.type === "health") {
      this.healthChecks.get(message.id)?.(message.ok);
    } else if (message.type === "chunks") {
      for (const chunk of message.chunks) {
        const run = this.pending.get(chunk.id);
        if (run) this.armWatchdog(run);
        run?.onChunk?.(chunk.outputs, chunk.indexes, chunk.ended);
      }
      // Acknowledged once this turn's work (the streams' writes, other sockets' events) is done, so the worker holds
      // and merges what a busy main thread could not take yet.
      setImmediate(() => {
        if (!this.terminating) this.worker.postMessage({ type: "chunks-handled" } satisfies ToWorker);
      });
    } else if (message.type === "result") {
      const run = this.forget(message.id);
      run?.resolve({ outputs: message.outputs, errors: message.errors, predict: message.predict });
    }
  }

  private failPending(error: HttpError) {
    for (const run of this.pending.values()) {
      clearTimeout(run.watchdog);
      run.reject(error);
    }
    this.pending.clear();
  }

  async terminate() {
    this.terminating = true;
    this.failPending(errors.shuttingDown());
    await this.worker.terminate();
  }
}

/**
 * Start a worker on worker.js, or through tsx when TypeScript must load: batchwise run from source (tests,
 * `npm run cli`), or a user's API module written in TypeScript (`npx tsx my-api.ts`). A worker does not inherit the
 * parent's module loader hooks, so it registers tsx itself before importing.
 */
function spawnWorker(resourceLimits: ResourceLimits | undefined, apiModule: string): Worker {
  const compiled = fileURLToPath(import.meta.url).endsWith(".js");
  const entry = new URL(compiled ? "./worker.js" : "./worker.ts", import.meta.url);
  if (compiled && !/\.[mc]?tsx?$/.test(apiModule)) return new Worker(entry, { resourceLimits });
  const tsxDir = path.dirname(createRequire(import.meta.url).resolve("tsx/package.json"));
  const tsx = pathToFileURL(path.join(tsxDir, "dist", "esm", "api", "index.mjs")).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, resourceLimits });
}
