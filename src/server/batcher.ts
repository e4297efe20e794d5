import type { Cancellation } from "./cancellation.js";
import { Channel } from "./channel.js";
import { errors, HttpError } from "../api/errors.js";
import type { RequestRecord } from "./request-record.js";
import { itemFailure } from "./run-batch.js";
import { activeTracer, BatchTrace } from "./tracing.js";
import type { Runner, WorkerPool } from "./worker-pool.js";

export interface BatcherOptions {
  /** Most items in one batch; 1 turns batching off. */
  maxBatchSize: number;
  /** Seconds a batch may wait to fill while more work is on its way. */
  batchTimeout: number;
  /** Seconds an item may wait in the queue before it fails with 504. */
  queueTimeout: number;
  /** Queue length beyond which new items are refused with 503. */
  maxQueueSize: number;
  /** The endpoint's path (tracing names its batches after it). */
  path?: string;
  /** Called with the size of every batch dispatched (metrics). */
  onBatch?: (size: number) => void;
  /**
   * predict may run twice for one request: an item whose worker died under it (uncaught exception, exit, out of
   * memory) is run once more, alone, on a healthy worker; one that kills a worker a second time is poison (500).
   */
  idempotent?: boolean;
  /** Called when an item is run again after its worker died, or refused as poison (logs, metrics). */
  onRetry?: (event: "retried" | "poison") => void;
}

interface QueueItem {
  input: unknown;
  cancellation: Cancellation;
  enqueuedAt: number;
  timer: NodeJS.Timeout;
  /** Takes the queue's abort listener off again. */
  unwatch: () => void;
  /** Non-streaming: the single output. */
  resolve?: (output: unknown) => void;
  reject: (error: unknown) => void;
  /** Streaming: outputs as they come. */
  channel?: Channel<unknown>;
  /** Workers that died while running this item. */
  crashes?: number;
  /** Makes the input again for a retry. */
  redecode?: () => unknown;
  /** Streaming: the client already has outputs of it (a retry would repeat them). */
  emitted?: boolean;
  /** The request's record: its deadline, and where its stage times go. */
  record?: RequestRecord;
}

/**
 * The dynamic batching queue of one endpoint, shared by all its workers.
 *
 * A batch goes to an idle worker as soon as there is one and the queue is non-empty. It waits (up to batchTimeout,
 * counted from the oldest queued item) only while more work is on its way — requests still being decoded or other
 * workers still busy — and the batch is not yet full. So a lone request never pays the batch timeout, and under load
 * batches fill up.
 */
export class Batcher {
  private queue: QueueItem[] = [];
  private fillTimer: NodeJS.Timeout | null = null;
  /** Requests accepted by the server whose decodeRequest has not finished yet: work on its way. */
  decoding = 0;

  constructor(
    private readonly pool: WorkerPool,
    private readonly options: BatcherOptions,
  ) {}

  private pumpScheduled = false;

  get depth() {
    return this.queue.length;
  }

  /**
   * Queue one decoded input; resolves with its output. `redecode` makes the input again for a retry (idempotent
   * endpoints): the first one's buffers were moved to the worker that died.
   */
  submit(input: unknown, cancellation: Cancellation, redecode?: () => unknown, record?: RequestRecord): Promise<unknown> {
    return new Promise((resolve, reject) => this.enqueue({ input, cancellation, resolve, reject, redecode, record }));
  }

  /** Queue one decoded input of a streaming endpoint; yields its outputs as the worker produces them. */
  submitStream(input: unknown, cancellation: Cancellation, redecode?: () => unknown, record?: RequestRecord): AsyncIterable<unknown> {
    const channel = new Channel<unknown>();
    this.enqueue({ input, cancellation, channel, reject: (error) => channel.fail(error), redecode, record });
    return channel;
  }

  /**
   * Refuse a new item now if the queue is full (checked before decoding, so overload costs no decode). Requests
   * being decoded count as queued: they are on their way in, and a burst that found the queue empty would otherwise
   * all be decoded at once (memory and CPU for each) only to be refused when they reach the queue.
   */
  checkCapacity(): void {
    if (this.queue.length + this.decoding >= this.options.maxQueueSize) throw errors.queueFull(1);
  }

  /** Re-evaluate dispatch: called on enqueue, when a worker becomes idle, and when a fill timer fires. */
  pump = (): void => {
    if (this.withDeadline > 0) this.dropExpired();
    while (this.queue.length > 0) {
      if (this.shouldWait()) return;
      const runner = this.pool.take();
      if (!runner) return;
      this.dispatch(runner, this.nextBatch());
    }
  };

  /** Fail everything still queued (shutdown). */
  rejectAll(error: HttpError): void {
    for (const item of this.queue.splice(0)) this.settle(item).reject(error);
  }

  private enqueue(fields: Pick<QueueItem, "input" | "cancellation" | "resolve" | "reject" | "channel" | "redecode" | "record">) {
    this.checkCapacity();
    if (fields.cancellation.aborted) return;
    const item = fields as QueueItem;
    item.enqueuedAt = performance.now();
    if (item.record) {
      item.record.enqueuedAt = item.enqueuedAt;
      // decodeRequest took the whole time left: the model never sees it
      if (item.record.expired(item.enqueuedAt)) return item.reject(new HttpError("deadline_exceeded"));
    }
    this.wait(item);
    this.queue.push(item);
    this.schedulePump();
  }

  /**
   * With batching on, requests that arrive in the same event-loop turn join one batch: the pump runs once, after the
   * turn's I/O callbacks (setImmediate), instead of dispatching the first of them alone to an idle worker while the
   * rest are still being parsed. That costs a lone request one loop turn, and saves a worker round trip per request
   * under load. A worker that admits batches into its running loop (maxBatchesPerWorker > 1) takes the rest of the
   * turn's requests at its next step: there the turn's first request goes at once, and the rest follow as one batch.
   */
  private schedulePump() {
    if (this.options.maxBatchSize <= 1) return this.pump();
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    if (this.pool.admitsIntoRunning) this.pump();
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /**
   * The items of the next batch, oldest first. An item whose worker died under it runs alone: if it is the input that
   * kills workers, it takes no batch-mates down with it the second time, and the second death proves it.
   */
  private nextBatch(): QueueItem[] {
    if (this.queue[0].crashes) return this.queue.splice(0, 1);
    let end = 0;
    while (end < this.queue.length && end < this.options.maxBatchSize && !this.queue[end].crashes) end++;
    return this.queue.splice(0, end);
  }

  private shouldWait(): boolean {
    const { maxBatchSize, batchTimeout } = this.options;
    if (maxBatchSize <= 1 || batchTimeout <= 0 || this.queue.length >= maxBatchSize) return false;
    // Busy workers are worth waiting for only when a batch must be whole before it runs: a worker that admits new
    // batches into its running loop (maxBatchesPerWorker > 1) gathers the requests that arrive together itself, at
    // its next step, so holding one back here only adds batchTimeout to its time to first output.
    const moreOnTheWay = this.decoding > 0 || (this.pool.busyCount > 0 && !this.pool.admitsIntoRunning);
    if (!moreOnTheWay) return false;
    const waitedMs = performance.now() - this.queue[0].enqueuedAt;
    const leftMs = batchTimeout * 1000 - waitedMs;
    if (leftMs <= 0) return false;
    if (!this.fillTimer) {
      this.fillTimer = setTimeout(() => {
        this.fillTimer = null;
        this.pump();
      }, leftMs);
    }
    return true;
  }

  private async dispatch(runner: Runner, items: QueueItem[]) {
    if (this.fillTimer) {
      clearTimeout(this.fillTimer);
      this.fillTimer = null;
    }
    for (const item of items) {
      this.settle(item);
      if (item.record) item.record.batchSize = items.length;
    }
    this.options.onBatch?.(items.length);
    const inputs = items.map((item) => item.input);
    const cancellations = items.map((item) => item.cancellation);
    const streaming = items[0].channel !== undefined;
    const requestIds = this.pool.wantsRequestIds ? items.map((item) => item.record?.requestId ?? "") : undefined;
    // Spans only where an SDK is registered; the trace context goes on to the model when any item has one.
    const batchTrace = activeTracer() ? BatchTrace.begin(items.map((item) => item.record), this.options.path ?? "", runner.id) : undefined;
    const traceparents = batchTrace || items.some((item) => item.record?.traceparent) ? BatchTrace.traceparents(items.map((item) => item.record)) : undefined;
    const meta = requestIds || traceparents ? { requestIds, traceparents } : undefined;
    try {
      const outcome = await this.pool.run(runner, inputs, cancellations, streaming ? (outputs, indexes, ended) => {
        outputs.forEach((output, k) => {
          if (output === undefined) return;
          const record = items[indexes[k]].record;
          if (record && !record.firstOutputAt) record.firstOutputAt = performance.now();
          items[indexes[k]].emitted = true;
          items[indexes[k]].channel!.push(output);
        });
        // An item whose stream is finished closes its response now, not when its batch's longest stream does.
        for (const i of ended ?? []) items[i].channel!.end();
      } : undefined, meta);
      batchTrace?.end(outcome.predict, outcome.errors.some((error) => error !== undefined));
      items.forEach((item, i) => {
        if (item.record && outcome.predict) item.record.predictMs = outcome.predict.ms;
        const error = outcome.errors[i];
        if (error !== undefined) item.reject(itemFailure(error));
        else if (item.channel) item.channel.end();
        else item.resolve!(outcome.outputs[i]);
      });
    } catch (error) {
      batchTrace?.end(undefined, true);
      const crashed = error instanceof HttpError && error.code === "worker_crashed";
      // reversed: the retried items go back to the head of the queue in their order (they have waited longest)
      for (const item of [...items].reverse()) {
        if (!crashed || !this.options.idempotent || item.emitted) item.reject(error);
        else this.retryOrQuarantine(item);
      }
      this.pump();
    }
  }

  /**
   * A worker died running this item (idempotent endpoint). The first time, it runs again alone, ahead of the queue;
   * a second death (alone, so it is the culprit) answers 500 poison_input and it is never run again.
   */
  private retryOrQuarantine(item: QueueItem): void {
    item.crashes = (item.crashes ?? 0) + 1;
    if (item.crashes >= 2) {
      this.options.onRetry?.("poison");
      item.reject(new HttpError("poison_input"));
      return;
    }
    if (item.cancellation.aborted) {
      item.reject(new HttpError("client_closed"));
      return;
    }
    this.options.onRetry?.("retried");
    const requeue = (input: unknown) => {
      if (item.cancellation.aborted) return item.reject(new HttpError("client_closed"));
      item.input = input;
      this.wait(item);
      this.queue.unshift(item);
      this.pump();
    };
    if (!item.redecode) return requeue(item.input);
    // decoded again (a few ms, only on a retry); it decoded the first time, so a failure now is the server's
    Promise.resolve()
      .then(item.redecode)
      .then(requeue, () => item.reject(new HttpError("worker_crashed")));
  }

  /**
   * Put an item in the waiting state: it fails with 504 after queueTimeout, and a client that disconnects before
   * dispatch is dropped (its input never reaches the model).
   */
  private wait(item: QueueItem): void {
    const queueMs = this.options.queueTimeout * 1000;
    const deadline = item.record?.deadline;
    if (deadline === undefined) {
      item.timer = setTimeout(() => this.expire(item), queueMs);
    } else {
      this.withDeadline++;
      const leftMs = deadline - performance.now();
      item.timer = leftMs < queueMs
        ? setTimeout(() => this.remove(item, new HttpError("deadline_exceeded")), Math.max(0, leftMs))
        : setTimeout(() => this.expire(item), queueMs);
    }
    item.unwatch = item.cancellation.onAbort(() => this.remove(item, new HttpError("client_closed")));
  }

  /** Take an item out of the waiting state (timer and abort listener off) and return it. */
  private settle(item: QueueItem): QueueItem {
    clearTimeout(item.timer);
    item.unwatch();
    if (item.record) {
      item.record.dequeuedAt = performance.now();
      if (item.record.deadline !== undefined) this.withDeadline--;
    }
    return item;
  }

  /** Queued items that carry a deadline: while there are none, dispatch checks none. */
  private withDeadline = 0;

  /**
   * Fail the queued items whose deadline has passed, so that no batch runs one. Their timers would too, but a timer
   * fires after the turn it is due in, and a batch formed in that turn must not take the item along.
   */
  private dropExpired(): void {
    const now = performance.now();
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const item = this.queue[i];
      if (!item.record?.expired(now)) continue;
      this.queue.splice(i, 1);
      this.settle(item).reject(new HttpError("deadline_exceeded"));
    }
  }

  private remove(item: QueueItem, error: HttpError) {
    const index = this.queue.indexOf(item);
    if (index < 0) return;
    this.queue.splice(index, 1);
    this.settle(item).reject(error);
  }

  private expire(item: QueueItem) {
    this.remove(item, errors.queueTimeout(this.options.queueTimeout));
  }
}
