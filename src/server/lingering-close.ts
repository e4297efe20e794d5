import type { Server } from "node:http";
import type { Socket } from "node:net";

/**
 * Lingering close: how the server closes a connection whose request it answered before the whole body arrived
 * (a 413 for a body over the limit, with or without Content-Length; a 401 or 415 sent before reading an upload).
 *
 * Node closes such a connection with `destroySoon()`: it writes the answer, then destroys the socket while the
 * client is still uploading. The kernel answers the unread bytes with a TCP reset, and a reset that reaches the
 * client before it has read the answer discards that answer: undici `fetch` and `node:http` clients saw EPIPE /
 * ECONNRESET ("fetch failed") instead of the 413 (curl happened to read it in time). Here the server sends the
 * answer (with Connection: close) and keeps the connection open, reading and discarding what the client still
 * sends, until the client closes — at most {@link LINGER_MAX_BYTES} or for {@link LINGER_MAX_MS}, whichever comes
 * first — and only then destroys the socket. Clients read the answer and stop: undici closes as soon as the
 * response is complete, curl stops uploading; a client that keeps uploading anyway (node:http with the whole body
 * in one write) gets its reset only after the answer has long been delivered.
 *
 * The bound is per connection and counts every byte read after the answer (body bytes Node's parser was still
 * discarding included); the connection is closed either way, so the discarded bytes never reach a handler.
 */
// Larger than the uploads clients commonly send by mistake (the 17–200 MB of issue 17): such a client always gets to
// read its answer before the connection closes, even when it has not looked at it while still uploading (undici under
// load once read a reset after 64 MiB). Loopback or LAN moves it in well under the time bound.
export const LINGER_MAX_BYTES = 256 * 1024 * 1024;
export const LINGER_MAX_MS = 5_000;

export interface LingerOptions {
  maxBytes?: number;
  maxMs?: number;
  /** Called once per lingering connection when it closes, with what was discarded (tests, metrics). */
  onDone?: (stats: { discardedBytes: number; ms: number; reason: "client-closed" | "max-bytes" | "max-ms" | "error" }) => void;
}

const currentRequest = Symbol("batchwise.currentRequest");
type TrackedSocket = Socket & { [currentRequest]?: { complete: boolean } };

/** Install lingering close on every connection of `server`. Connections whose request was fully read close as before. */
export function installLingeringClose(server: Server, options: LingerOptions = {}): void {
  const maxBytes = options.maxBytes ?? LINGER_MAX_BYTES;
  const maxMs = options.maxMs ?? LINGER_MAX_MS;
  server.on("request", (request, response) => {
    (request.socket as TrackedSocket)[currentRequest] = request;
    // An answer that starts before its request's body has arrived closes the connection (fastify adds Connection:
    // close only to body-parsing errors; a 401 or 404 to an upload would otherwise keep the connection alive and
    // make Node read the rest of the body, however large, before the next request).
    const writeHead = response.writeHead;
    response.writeHead = function (this: typeof response, ...args: Parameters<typeof writeHead>) {
      if (!request.complete) this.shouldKeepAlive = false;
      return writeHead.apply(this, args);
    } as typeof writeHead;
  });
  server.on("connection", (socket: TrackedSocket) => {
    const destroySoon = socket.destroySoon;
    socket.destroySoon = function lingeringDestroySoon(this: TrackedSocket) {
      const request = this[currentRequest];
      if (!request || request.complete || this.destroyed) return destroySoon.call(this);
      linger(this, maxBytes, maxMs, options.onDone);
    };
  });
}

function linger(socket: Socket, maxBytes: number, maxMs: number, onDone: LingerOptions["onDone"]) {
  const started = performance.now();
  const startBytes = socket.bytesRead;
  let discarded = 0;
  let done = false;
  const finish = (reason: "client-closed" | "max-bytes" | "max-ms" | "error") => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    clearInterval(meter);
    discarded = socket.bytesRead - startBytes;
    socket.destroy();
    onDone?.({ discardedBytes: discarded, ms: performance.now() - started, reason });
  };
  // No FIN yet: a Node client (undici, node:http) whose socket sees the end of the stream while it is still writing
  // fails its own next write with EPIPE ("This socket has been ended by the other party"), sometimes before it has
  // handed the answer to the caller. The answer says Connection: close; the client closes when it has read it.
  const timer = setTimeout(() => finish("max-ms"), maxMs);
  timer.unref();
  // Count with the handle's byte counter: Node's HTTP parser reads the socket natively (no 'data' events) and drops
  // the rest of the answered request's body.
  const meter = setInterval(() => {
    discarded = socket.bytesRead - startBytes;
    if (discarded >= maxBytes) finish("max-bytes");
  }, 10);
  meter.unref();
  // The client has stopped sending: close once our answer has left (it usually has long since).
  socket.on("end", () => {
    if (socket.writableLength === 0) finish("client-closed");
    else socket.once("drain", () => finish("client-closed"));
  });
  socket.on("error", () => finish("error"));
  socket.on("close", () => finish("client-closed"));
  socket.resume();
}
