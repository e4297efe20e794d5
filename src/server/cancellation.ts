import { requestIdFrom } from "./failure-log.js";
import type { RequestContext } from "../api/model-api.js";

/**
 * One request's cancellation: aborted when its client goes away. The server tracks every request with one of these
 * instead of an AbortController, which is an EventTarget with listener maps of its own: making one per request and
 * adding and removing its listeners (queue, worker hop) was a visible share of the main thread's time per request.
 * The AbortSignal an API sees (`ctx.signal`, `ctx.signals`) is made the first time something asks for it.
 */
export class Cancellation {
  aborted = false;
  private listeners: (() => void)[] | undefined;
  private controller: AbortController | undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }

  /** Call `listener` once when this is aborted (not if it already was); returns what takes it off again. */
  onAbort(listener: () => void): () => void {
    if (this.aborted) return noop;
    (this.listeners ??= []).push(listener);
    return () => {
      const index = this.listeners?.indexOf(listener) ?? -1;
      if (index >= 0) this.listeners!.splice(index, 1);
    };
  }

  /** An AbortSignal that follows this cancellation, for APIs (made on first use). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }
}

const noop = () => {};

/** A request's context for the API: its signal is the cancellation's, made only if the API reads it. */
export function requestContext(
  cancellation: Cancellation,
  headers: RequestContext["headers"] = {},
  requestId: string = requestIdFrom(headers["x-request-id"]),
): RequestContext {
  return {
    requestId,
    get signal() {
      return cancellation.signal;
    },
    headers,
    state: {},
  };
}
