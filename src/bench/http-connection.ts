import net from "node:net";

/**
 * One keep-alive HTTP/1.1 connection that sends one request at a time: what a closed-loop load generator's virtual
 * client needs, and nothing more. The load generator shares this machine's cores with the server it measures, so
 * every microsecond it spends per request is taken from the server; a general-purpose client (undici's Pool: header
 * objects, body streams, a dispatcher per request) spends about twice what this does, which on two cores reads as a
 * slower server. It sends a prebuilt head and the body in one `writev`, and reads the status, the body's framing
 * (content-length, chunked, or until close) and the body bytes; nothing else of the response is parsed.
 */

export interface HttpResponse {
  status: number;
  body: Buffer;
}

/** Why a request got no response: no answer within the timeout, or the connection failed or closed first. */
export class HttpRequestError extends Error {
  constructor(
    message: string,
    readonly kind: "timeout" | "connection",
  ) {
    super(message);
  }
}

/** The request line and headers of a request with a body of `contentLength` bytes, ready to write. */
export function requestHead(method: string, url: URL, path: string, headers: Record<string, string>, contentLength: number): Buffer {
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name + value)) throw new RangeError(`header ${JSON.stringify(name)} contains a line break`);
    if (name.toLowerCase() !== "content-length") head += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${head}content-length: ${contentLength}\r\n\r\n`, "latin1");
}

interface Pending {
  resolve(response: HttpResponse): void;
  reject(error: HttpRequestError): void;
  /** The request's last byte has been handed to the kernel. */
  written: boolean;
}

const CONNECTION = /\r\nconnection:[ \t]*([^\r]*)/i;
const TRANSFER_ENCODING = /\r\ntransfer-encoding:[ \t]*([^\r]*)/i;
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*([^\r]*)/i;

/** Beyond this many bytes without the end of the headers, the peer is not speaking HTTP to us. */
const MAX_HEAD_BYTES = 64 * 1024;

export class HttpConnection {
  private socket: net.Socket | null = null;
  private pending: Pending | null = null;
  private received: Buffer | null = null;

  /** `timeoutMs`: the longest the connection may sit silent while a request waits for its response. */
  constructor(
    private readonly url: URL,
    private readonly timeoutMs: number,
  ) {}

  /** Send one request (`head` from {@link requestHead}) and resolve with its response. One at a time. */
  request(head: Buffer, body: Buffer): Promise<HttpResponse> {
    if (this.pending) return Promise.reject(new Error("HttpConnection sends one request at a time"));
    const socket = this.socket ?? this.connect();
    return new Promise<HttpResponse>((resolve, reject) => {
      const pending: Pending = { resolve, reject, written: false };
      this.pending = pending;
      this.received = null;
      socket.setTimeout(this.timeoutMs);
      const written = () => (pending.written = true);
      socket.cork();
      if (body.length === 0) socket.write(head, written);
      else {
        socket.write(head);
        socket.write(body, written);
      }
      socket.uncork();
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }

  private connect(): net.Socket {
    const socket = net.connect({ host: this.url.hostname.replace(/^\[|\]$/g, ""), port: Number(this.url.port || 80), noDelay: true });
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("timeout", () => this.fail(socket, new HttpRequestError(`no response within ${this.timeoutMs} ms`, "timeout")));
    socket.on("error", (error) => this.fail(socket, new HttpRequestError(error.message, "connection")));
    socket.on("close", () => this.fail(socket, new HttpRequestError("the server closed the connection", "connection")));
    this.socket = socket;
    return socket;
  }

  private fail(socket: net.Socket, error: HttpRequestError) {
    if (socket !== this.socket) return;
    // A response that runs until the connection closes ends here, complete.
    const response = error.kind === "connection" && this.pending && this.received ? parseResponse(this.received, true) : null;
    this.close();
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    if (response && response !== "incomplete") pending.resolve(response.response);
    else pending.reject(error);
  }

  private onData(chunk: Buffer) {
    const bytes = this.received ? Buffer.concat([this.received, chunk]) : chunk;
    const pending = this.pending;
    if (!pending) {
      this.close(); // bytes nobody asked for: the connection's state is unknown
      return;
    }
    let parsed;
    try {
      parsed = parseResponse(bytes, false);
    } catch (error) {
      this.fail(this.socket!, new HttpRequestError(`bad response: ${(error as Error).message}`, "connection"));
      return;
    }
    if (parsed === "incomplete") {
      this.received = bytes;
      return;
    }
    this.received = null;
    this.pending = null;
    // Reuse the connection only where both sides agree it is between messages: an answer that came before the
    // request finished going out (an early 413) or with `connection: close` ends it.
    if (!parsed.keepAlive || !pending.written || parsed.end !== bytes.length) this.close();
    else this.socket!.setTimeout(0);
    pending.resolve(parsed.response);
  }
}

type Parsed = { response: HttpResponse; keepAlive: boolean; end: number } | "incomplete";

/** The first complete response in `bytes` (skipping 1xx), or "incomplete". `closed`: the peer has closed. */
function parseResponse(bytes: Buffer, closed: boolean): Parsed {
  let start = 0;
  for (;;) {
    const headEnd = bytes.indexOf("\r\n\r\n", start, "latin1");
    if (headEnd < 0) {
      if (bytes.length - start > MAX_HEAD_BYTES) throw new Error("headers too long");
      return "incomplete";
    }
    const head = bytes.toString("latin1", start, headEnd);
    const status = /^HTTP\/1\.([01]) (\d{3})/.exec(head);
    if (!status) throw new Error(`not an HTTP/1.x status line: ${JSON.stringify(head.slice(0, 40))}`);
    const code = Number(status[2]);
    const bodyStart = headEnd + 4;
    if (code >= 100 && code < 200) {
      start = bodyStart;
      continue;
    }
    const header = (pattern: RegExp) => pattern.exec(head)?.[1].trim();
    const connection = header(CONNECTION)?.toLowerCase();
    const keepAlive = status[1] === "1" ? connection !== "close" : connection === "keep-alive";
    const done = (end: number, body: Buffer): Parsed => ({ response: { status: code, body }, keepAlive, end });
    if (code === 204 || code === 304) return done(bodyStart, Buffer.alloc(0));
    if (/(^|,)\s*chunked$/i.test(header(TRANSFER_ENCODING) ?? "")) return dechunk(bytes, bodyStart, done);
    const length = header(CONTENT_LENGTH);
    if (length !== undefined) {
      if (!/^\d+$/.test(length)) throw new Error(`bad content-length ${JSON.stringify(length)}`);
      const end = bodyStart + Number(length);
      return bytes.length < end ? "incomplete" : done(end, bytes.subarray(bodyStart, end));
    }
    // Neither framing: the body runs until the server closes the connection.
    if (!closed) return "incomplete";
    return { response: { status: code, body: bytes.subarray(bodyStart) }, keepAlive: false, end: bytes.length };
  }
}

/** A chunked body from `offset`: the chunks' data joined, once the last chunk and the trailers have arrived. */
function dechunk(bytes: Buffer, offset: number, done: (end: number, body: Buffer) => Parsed): Parsed {
  const parts: Buffer[] = [];
  let at = offset;
  for (;;) {
    const lineEnd = bytes.indexOf("\r\n", at, "latin1");
    if (lineEnd < 0) return "incomplete";
    const size = parseInt(bytes.toString("latin1", at, lineEnd).split(";")[0], 16);
    if (!Number.isFinite(size) || size < 0) throw new Error("bad chunk size");
    if (size === 0) {
      // The trailers (usually none) end with an empty line.
      const end = bytes.indexOf("\r\n\r\n", lineEnd, "latin1");
      return end < 0 ? "incomplete" : done(end + 4, Buffer.concat(parts));
    }
    const dataEnd = lineEnd + 2 + size;
    if (bytes.length < dataEnd + 2) return "incomplete";
    parts.push(bytes.subarray(lineEnd + 2, dataEnd));
    at = dataEnd + 2;
  }
}
