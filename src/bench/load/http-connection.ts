import net from "node:net";

/**
 * One keep-alive HTTP/1.1 connection that sends one request at a time: what a closed-loop load generator's virtual
 * client needs, and nothing more. The load generator shares this machine's cores with the server it measures, so
 * every microsecond it spends per request is taken from the server; a general-purpose client (undici's Pool: header
 * objects, body streams, a dispatcher per request) spends about twice what this does, which on two cores reads as a
 * slower server. It sends a prebuilt head and the body in one `writev`, and reads the status, the body's framing
 * (content-length, chunked, or until close) and the body bytes as they arrive; nothing else of the response is parsed.
 * A streamed body (server-sent events) can be handed over piece by piece as it arrives.
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
  reader: ResponseReader;
  resolve(response: HttpResponse): void;
  reject(error: HttpRequestError): void;
  /** The request's last byte has been handed to the kernel. */
  written: boolean;
}

/** Beyond this many bytes without the end of the headers, the peer is not speaking HTTP to us. */
const MAX_HEAD_BYTES = 64 * 1024;

export class HttpConnection {
  private socket: net.Socket | null = null;
  private pending: Pending | null = null;

  /** `timeoutMs`: the longest the connection may sit silent while a request waits for its response. */
  constructor(
    private readonly url: URL,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Send one request (`head` from {@link requestHead}) and resolve with its response once it is complete. One at a
   * time. With `onBody`, a successful (2xx) response's body goes to it piece by piece as it arrives, and the
   * resolved body is empty; any other status's body is collected as usual.
   */
  request(head: Buffer, body: Buffer, onBody?: (data: Buffer) => void): Promise<HttpResponse> {
    if (this.pending) return Promise.reject(new Error("HttpConnection sends one request at a time"));
    const socket = this.socket ?? this.connect();
    return new Promise<HttpResponse>((resolve, reject) => {
      const pending: Pending = { reader: new ResponseReader(onBody), resolve, reject, written: false };
      this.pending = pending;
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
    this.close();
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    // A body framed by the connection's end is complete when the server closes it.
    if (error.kind === "connection" && pending.reader.endsWithConnection) pending.resolve(pending.reader.response());
    else pending.reject(error);
  }

  private onData(chunk: Buffer) {
    const pending = this.pending;
    if (!pending) {
      this.close(); // bytes nobody asked for: the connection's state is unknown
      return;
    }
    let complete: boolean;
    try {
      complete = pending.reader.push(chunk);
    } catch (error) {
      this.fail(this.socket!, new HttpRequestError(`bad response: ${(error as Error).message}`, "connection"));
      return;
    }
    if (!complete) return;
    this.pending = null;
    // Reuse the connection only where both sides agree it is between messages: an answer that came before the
    // request finished going out (an early 413), with `connection: close`, or with bytes after it ends it.
    if (!pending.reader.keepAlive || !pending.written || pending.reader.extraBytes > 0) this.close();
    else this.socket!.setTimeout(0);
    pending.resolve(pending.reader.response());
  }
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})/;
const CONNECTION = /\r\nconnection:[ \t]*([^\r]*)/i;
const TRANSFER_ENCODING = /\r\ntransfer-encoding:[ \t]*([^\r]*)/i;
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*([^\r]*)/i;

/**
 * One response, read incrementally from the bytes as they arrive (each byte looked at once, however the response is
 * split into packets): the head (1xx responses skipped), then a body framed by content-length, by chunked
 * transfer-encoding, or by the connection's end.
 */
class ResponseReader {
  status = 0;
  keepAlive = true;
  /** Bytes received after the response's end (none, without pipelining). */
  extraBytes = 0;
  private head: Buffer | null = null;
  private framing: "head" | "length" | "chunked" | "close" = "head";
  /** length: body bytes still to come; chunked: bytes left of the current chunk's data. */
  private remaining = 0;
  private chunkPart: "size" | "data" | "data-end" | "trailers" = "size";
  /** A line of the chunked framing (size or trailer) split across packets. */
  private line = "";
  private readonly parts: Buffer[] = [];

  constructor(private readonly onBody?: (data: Buffer) => void) {}

  get endsWithConnection() {
    return this.framing === "close";
  }

  response(): HttpResponse {
    return { status: this.status, body: this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts) };
  }

  /** Take the next bytes; true once the response is complete. */
  push(data: Buffer): boolean {
    let at = 0;
    if (this.framing === "head") {
      const bytes = this.head ? Buffer.concat([this.head, data]) : data;
      at = this.readHead(bytes);
      if (at < 0) return false;
      data = bytes;
    }
    if (this.framing === "length") {
      const take = Math.min(this.remaining, data.length - at);
      this.emit(data, at, at + take);
      this.remaining -= take;
      this.extraBytes = data.length - at - take;
      return this.remaining === 0;
    }
    if (this.framing === "close") {
      this.emit(data, at, data.length);
      return false;
    }
    return this.readChunked(data, at);
  }

  /** Parse the head once it is all here: the offset of the body in `bytes`, or -1 (kept for the next packet). */
  private readHead(bytes: Buffer): number {
    let start = 0;
    for (;;) {
      const headEnd = bytes.indexOf("\r\n\r\n", start, "latin1");
      if (headEnd < 0) {
        if (bytes.length - start > MAX_HEAD_BYTES) throw new Error("headers too long");
        this.head = bytes.subarray(start);
        return -1;
      }
      const head = bytes.toString("latin1", start, headEnd);
      const status = STATUS_LINE.exec(head);
      if (!status) throw new Error(`not an HTTP/1.x status line: ${JSON.stringify(head.slice(0, 40))}`);
      start = headEnd + 4;
      this.status = Number(status[2]);
      if (this.status < 200) continue; // 100 Continue and friends: the real response follows
      this.head = null;
      const header = (pattern: RegExp) => pattern.exec(head)?.[1].trim();
      const connection = header(CONNECTION)?.toLowerCase();
      this.keepAlive = status[1] === "1" ? connection !== "close" : connection === "keep-alive";
      const length = header(CONTENT_LENGTH);
      if (this.status === 204 || this.status === 304) this.framing = "length";
      else if (/(^|,)\s*chunked$/i.test(header(TRANSFER_ENCODING) ?? "")) this.framing = "chunked";
      else if (length !== undefined) {
        if (!/^\d+$/.test(length)) throw new Error(`bad content-length ${JSON.stringify(length)}`);
        this.framing = "length";
        this.remaining = Number(length);
      } else {
        this.framing = "close";
        this.keepAlive = false;
      }
      return start;
    }
  }

  private readChunked(data: Buffer, at: number): boolean {
    while (at < data.length) {
      if (this.chunkPart === "data") {
        const take = Math.min(this.remaining, data.length - at);
        this.emit(data, at, at + take);
        this.remaining -= take;
        at += take;
        if (this.remaining === 0) this.chunkPart = "data-end";
        continue;
      }
      const lineEnd = data.indexOf(10, at); // "\n"; the "\r" before it is trimmed off the line
      if (lineEnd < 0) {
        this.line += data.toString("latin1", at);
        if (this.line.length > MAX_HEAD_BYTES) throw new Error("chunk framing line too long");
        return false;
      }
      const line = (this.line + data.toString("latin1", at, lineEnd)).replace(/\r$/, "");
      this.line = "";
      at = lineEnd + 1;
      if (this.chunkPart === "data-end") {
        if (line !== "") throw new Error("chunk data longer than its size");
        this.chunkPart = "size";
      } else if (this.chunkPart === "size") {
        const size = /^[0-9a-f]+/i.exec(line);
        if (!size) throw new Error(`bad chunk size ${JSON.stringify(line.slice(0, 20))}`);
        this.remaining = parseInt(size[0], 16);
        this.chunkPart = this.remaining === 0 ? "trailers" : "data";
      } else if (line === "") {
        this.extraBytes = data.length - at;
        return true; // the empty line after the last chunk's trailers (usually none)
      }
    }
    return false;
  }

  private emit(data: Buffer, from: number, to: number) {
    if (to <= from) return;
    const piece = data.subarray(from, to);
    if (this.onBody && this.status >= 200 && this.status < 300) this.onBody(piece);
    else this.parts.push(piece);
  }
}
