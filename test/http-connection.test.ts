import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpConnection, HttpRequestError, requestHead } from "../src/bench/load/http-connection.js";

// A raw TCP server answers each request path with hand-written bytes, so the client meets the framings a real
// server may use (content-length, chunked, until-close, 1xx, early answers) byte for byte, split across packets.
let server: net.Server;
let url: URL;
let connectionsOpened = 0;

type Answer = (socket: net.Socket, request: { path: string; bodyBytes: number }) => void | Promise<void>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Write the pieces with pauses between them, so they arrive as separate reads. */
async function trickle(socket: net.Socket, pieces: string[]) {
  for (const piece of pieces) {
    socket.write(piece);
    await sleep(5);
  }
}

const answers: Record<string, Answer> = {
  "/split": (socket) => trickle(socket, ["HTTP/1.1 200 OK\r\nContent-Le", "ngth: 11\r\n", "\r\nhello", " world"]),
  "/chunked": (socket) =>
    trickle(socket, ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n", "6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"]),
  "/chunked-split": (socket) =>
    trickle(socket, ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r", "\nhel", "lo\r\n", "6\r\n world", "\r\n0\r", "\n\r", "\n"]),
  "/close": (socket) => {
    void socket.end("HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbusy");
  },
  "/until-close": (socket) => {
    socket.write("HTTP/1.1 200 OK\r\n\r\npart one, ");
    setTimeout(() => socket.end("part two"), 10);
  },
  "/continue": (socket) => void socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"),
  "/cut": (socket) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part");
    setTimeout(() => socket.destroy(), 10);
  },
  "/extra": (socket) => void socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"),
  "/silent": () => {},
  "/garbage": (socket) => void socket.write("SSH-2.0-OpenSSH\r\n\r\n"),
};

beforeAll(async () => {
  server = net.createServer((socket) => {
    connectionsOpened++;
    let buffered = Buffer.alloc(0);
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const headEnd = buffered.indexOf("\r\n\r\n");
        if (headEnd < 0) return;
        const head = buffered.toString("latin1", 0, headEnd);
        const path = head.split(" ")[1];
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (path === "/early") {
          // Answer at once and hang up, before the (large) body has arrived: what a 413 does.
          socket.end("HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 8\r\n\r\ntoo big!");
          socket.on("data", () => {});
          return;
        }
        if (buffered.length < headEnd + 4 + length) return;
        buffered = buffered.subarray(headEnd + 4 + length);
        void answers[path](socket, { path, bodyBytes: length });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const send = (connection: HttpConnection, path: string, body = Buffer.from("{}")) =>
  connection.request(requestHead("POST", url, path, { "content-type": "application/json" }, body.length), body);

describe("HttpConnection", () => {
  it("reads a response split across packets and reuses the connection for the next request", async () => {
    const connection = new HttpConnection(url, 5000);
    const before = connectionsOpened;
    for (let i = 0; i < 3; i++) {
      const response = await send(connection, "/split");
      expect(response.status).toBe(200);
      expect(response.body.toString()).toBe("hello world");
    }
    expect(connectionsOpened - before).toBe(1);
    connection.close();
  });

  it("joins a chunked body (chunk extensions and trailers skipped) and keeps the connection", async () => {
    const connection = new HttpConnection(url, 5000);
    const before = connectionsOpened;
    expect((await send(connection, "/chunked")).body.toString()).toBe("hello world");
    expect((await send(connection, "/chunked")).body.toString()).toBe("hello world");
    expect(connectionsOpened - before).toBe(1);
    connection.close();
  });

  it("reads a chunked body whose framing lines are split across packets, handing it over as it arrives", async () => {
    const connection = new HttpConnection(url, 5000);
    expect((await send(connection, "/chunked-split")).body.toString()).toBe("hello world");
    const pieces: string[] = [];
    const body = Buffer.from("{}");
    const response = await connection.request(requestHead("POST", url, "/chunked-split", {}, 2), body, (data) => pieces.push(data.toString()));
    expect(pieces.join("")).toBe("hello world");
    expect(pieces.length).toBeGreaterThan(1);
    expect(response.body.length).toBe(0);
    // a non-2xx body is collected even when streaming was asked for
    const refused = await connection.request(requestHead("POST", url, "/close", {}, 2), body, () => expect.fail("not a 2xx body"));
    expect(refused.body.toString()).toBe("busy");
    connection.close();
  });

  it("opens a new connection after `connection: close`", async () => {
    const connection = new HttpConnection(url, 5000);
    const before = connectionsOpened;
    const first = await send(connection, "/close");
    expect(first.status).toBe(503);
    expect(first.body.toString()).toBe("busy");
    expect((await send(connection, "/split")).body.toString()).toBe("hello world");
    expect(connectionsOpened - before).toBe(2);
    connection.close();
  });

  it("drops a connection that sent bytes past the response's end (its state is unknown)", async () => {
    const connection = new HttpConnection(url, 5000);
    const before = connectionsOpened;
    expect((await send(connection, "/extra")).body.toString()).toBe("ok");
    expect((await send(connection, "/split")).body.toString()).toBe("hello world");
    expect(connectionsOpened - before).toBe(2);
    connection.close();
  });

  it("reads a body without framing until the server closes", async () => {
    const connection = new HttpConnection(url, 5000);
    const response = await send(connection, "/until-close");
    expect(response.body.toString()).toBe("part one, part two");
    expect((await send(connection, "/split")).status).toBe(200);
    connection.close();
  });

  it("skips a 100 Continue", async () => {
    const connection = new HttpConnection(url, 5000);
    const response = await send(connection, "/continue");
    expect(response.status).toBe(201);
    expect(response.body.toString()).toBe("ok");
    connection.close();
  });

  it("takes an answer sent before the request body has gone out (an early 413), then reconnects", async () => {
    const connection = new HttpConnection(url, 5000);
    const response = await send(connection, "/early", Buffer.alloc(32 * 1024 * 1024, 1));
    expect(response.status).toBe(413);
    expect(response.body.toString()).toBe("too big!");
    expect((await send(connection, "/split")).status).toBe(200);
    connection.close();
  });

  it("fails as 'connection' when the server hangs up mid-body, as 'timeout' when it stays silent, and on a non-HTTP answer", async () => {
    const connection = new HttpConnection(url, 200);
    await expect(send(connection, "/cut")).rejects.toMatchObject({ kind: "connection" });
    const silent = send(connection, "/silent");
    await expect(silent).rejects.toBeInstanceOf(HttpRequestError);
    await expect(silent).rejects.toMatchObject({ kind: "timeout" });
    await expect(send(connection, "/garbage")).rejects.toThrow(/bad response: not an HTTP\/1\.x status line/);
    // …and the connection still works afterwards
    expect((await send(connection, "/split")).body.toString()).toBe("hello world");
    connection.close();
  });

  it("refuses a header value with a line break (it would smuggle a header)", () => {
    expect(() => requestHead("POST", url, "/", { "x-a": "1\r\nx-b: 2" }, 0)).toThrow(/line break/);
  });
});
