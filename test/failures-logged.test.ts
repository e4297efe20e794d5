import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/server/server.js";
import { failingApi, FailingAPI, SECRET } from "./fixtures/failing-api.js";

// Failures are logged on the server, not leaked: each failure of decodeRequest, predict (worker or main thread),
// encodeResponse and setup is ONE log entry with the request id, the endpoint, the error's class, message and stack;
// the client gets the failure's code and the request id, never the internal message (unless exposeErrors).

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: Partial<ServerOptions> = {}) {
  const lines: string[] = [];
  const server = await createServer({ api: failingApi(), port: 0, log: (line) => lines.push(line), ...options });
  servers.push(server);
  return { url: await server.listen(), lines };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/predict`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, id: response.headers.get("x-request-id"), text, body: JSON.parse(text) };
}

/** The log entries about one request: exactly what the operator can grep for by the id the client quotes. */
const entriesFor = (lines: string[], id: string) => lines.filter((line) => line.includes(` request ${id} `));

describe("a failure is logged once and answered without its internals", () => {
  it("predict throwing in a worker: 500 predict_failed with the request id; the log has class, message and the worker's stack", async () => {
    const { url, lines } = await start();
    const answer = await post(url, { fail: "predict" });
    expect(answer.status).toBe(500);
    expect(answer.id).toMatch(/^[\w-]{8,}$/);
    expect(answer.body).toEqual({ error: { code: "predict_failed", message: `Prediction failed (request id ${answer.id})` } });
    expect(answer.text).not.toContain(SECRET);
    const entries = entriesFor(lines, answer.id!);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(new RegExp(`^predict_failed request ${answer.id} /predict: Error: unlucky number \\(${SECRET}\\)\\n`));
    // the stack is the worker's, pointing at the user's own file (tsx maps it to the .ts source)
    expect(entries[0]).toMatch(/\n\s+at FailingAPI\.predict \(.*test\/fixtures\/failing-api\.ts:\d+:\d+\)/);
  });

  it("the client's X-Request-Id is used when it is a sane token, replaced when it is not", async () => {
    const { url, lines } = await start();
    const given = await post(url, { fail: "predict" }, { "x-request-id": "order-42.retry:1" });
    expect(given.id).toBe("order-42.retry:1");
    expect(given.body.error.message).toContain("(request id order-42.retry:1)");
    expect(entriesFor(lines, "order-42.retry:1")).toHaveLength(1);
    const insane = await post(url, { value: 1 }, { "x-request-id": "a b <script>" });
    expect(insane.status).toBe(200);
    expect(insane.id).toMatch(/^[0-9a-f-]{36}$/);
    // every response carries it, successes and 404s included
    expect((await fetch(`${url}/nowhere`)).headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("exposeErrors: true puts the internal message back into the body (development)", async () => {
    const { url, lines } = await start({ exposeErrors: true });
    const answer = await post(url, { fail: "predict" });
    expect(answer.body.error.code).toBe("predict_failed");
    expect(answer.body.error.message).toBe(`Prediction failed: Error: unlucky number (${SECRET}) (request id ${answer.id})`);
    expect(entriesFor(lines, answer.id!)).toHaveLength(1);
  });

  it("a non-HttpError thrown by decodeRequest is a bug: 500 decode_failed, logged with its TypeError and stack", async () => {
    const { url, lines } = await start();
    const answer = await post(url, { fail: "decode" });
    expect(answer.status).toBe(500);
    expect(answer.body.error.code).toBe("decode_failed");
    expect(answer.body.error.message).toContain(`(request id ${answer.id})`);
    expect(answer.text).not.toMatch(/undefined|broken/);
    const entries = entriesFor(lines, answer.id!);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(new RegExp(`^decode_failed request ${answer.id} /predict: TypeError: .*broken`));
    expect(entries[0]).toMatch(/at FailingAPI\.decodeRequest \(.*failing-api\.ts:\d+:\d+\)/);
  });

  it("encodeResponse throwing: 500 encode_failed, logged", async () => {
    const { url, lines } = await start();
    const answer = await post(url, { value: 13 });
    expect(answer.status).toBe(500);
    expect(answer.body.error.code).toBe("encode_failed");
    expect(answer.text).not.toContain(SECRET);
    const entries = entriesFor(lines, answer.id!);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(/^encode_failed request \S+ \/predict: Error: cannot encode 13 .*\n\s+at FailingAPI\.encodeResponse/);
  });

  it("a BadRequestError keeps its status, code and message, and is not logged (it is the client's)", async () => {
    const { url, lines } = await start();
    const answer = await post(url, { fail: "refuse" });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: { code: "invalid_value", message: "value must be a number" } });
    expect(answer.id).toBeTruthy();
    expect(entriesFor(lines, answer.id!)).toEqual([]);
  });

  it("predict throwing on the main thread (workersPerDevice: 0): the same answer and one entry", async () => {
    const { url, lines } = await start({ api: new FailingAPI(), workersPerDevice: 0 });
    const answer = await post(url, { fail: "predict" });
    expect(answer.body.error.code).toBe("predict_failed");
    expect(answer.text).not.toContain(SECRET);
    const entries = entriesFor(lines, answer.id!);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(/at FailingAPI\.predict \(.*failing-api\.ts/);
  });
});

describe("a failed setup", () => {
  it("in a worker: listen rejects with the setup's own class, message and stack, logged once as setup_failed", async () => {
    const lines: string[] = [];
    const server = await createServer({ api: failingApi({ failSetup: true }), port: 0, log: (line) => lines.push(line) });
    servers.push(server);
    const error = (await server.listen().catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/^setup\(\) failed in worker 0 \(\w+\): RangeError: weights are corrupt/);
    expect(error.stack).toMatch(/at FailingAPI\.setup \(.*failing-api\.ts:\d+:\d+\)/);
    const entries = lines.filter((line) => line.startsWith("setup_failed"));
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(/^setup_failed \/predict: SetupError: setup\(\) failed in worker 0 .*RangeError: weights are corrupt/);
    expect(entries[0]).toMatch(/\n\s+at FailingAPI\.setup \(.*failing-api\.ts:\d+:\d+\)/);
  });

  it("under serve(): the process exits non-zero and its stderr has the setup's stack", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/serve-failing-setup.ts"], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).not.toBe(0);
    expect(output).not.toContain("URL never");
    expect(output).toMatch(/\[batchwise\] setup_failed \/predict: SetupError: .*RangeError: weights are corrupt/);
    expect(output).toMatch(/at FailingAPI\.setup \(.*test\/fixtures\/failing-api\.ts:\d+:\d+\)/);
  }, 60_000);
});
