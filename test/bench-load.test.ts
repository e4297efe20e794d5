import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageBodies, listImages, runLoad } from "../src/bench/load/load.js";
import { imagesDir } from "./helpers/paths.js";

// A bare fastify server in the test process is enough to check the load generator's counting; real benchmarks
// always put the server in another process.
let app: FastifyInstance;
let url: string;
let inFlight = 0;
let maxInFlight = 0;
const seenImageLengths = new Set<number>();

beforeAll(async () => {
  app = Fastify({ logger: false, bodyLimit: 32 * 1024 * 1024 });
  app.post("/echo", async (request) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inFlight--;
    const body = request.body as { image?: string; fail?: number };
    if (body.image) seenImageLengths.add(body.image.length);
    return { ok: true };
  });
  app.post("/flaky", async (request, reply) => {
    const { n } = request.body as { n: number };
    if (n % 3 === 0) return reply.code(503).send({ error: { code: "queue_full", message: "busy" } });
    if (n % 3 === 1) return reply.code(400).send({ error: { code: "bad_request", message: "bad" } });
    return { ok: true };
  });
  app.post("/hang", async () => new Promise(() => {}));
  url = await app.listen({ host: "127.0.0.1", port: 0 });
});

afterAll(async () => {
  await app.close();
});

describe("runLoad", () => {
  it("sends exactly `requests` requests with `concurrency` in flight and measures each", async () => {
    maxInFlight = 0;
    const result = await runLoad({ url, path: "/echo", concurrency: 8, requests: 64, bodies: [Buffer.from("{}")] });
    expect(result.successes).toBe(64);
    expect(result.errorCount).toBe(0);
    expect(result.latencyMs.count).toBe(64);
    expect(result.latencyMs.min).toBeGreaterThanOrEqual(4); // the handler sleeps 5 ms
    expect(result.requestsPerSecond).toBeGreaterThan(0);
    expect(result.wallSeconds).toBeGreaterThan(0);
    expect(maxInFlight).toBe(8);
  });

  it("counts errors by status, with requests = successes + errors", async () => {
    const result = await runLoad({
      url,
      path: "/flaky",
      concurrency: 4,
      requests: 30,
      bodies: (i) => Buffer.from(JSON.stringify({ n: i })),
    });
    expect(result.successes).toBe(10);
    expect(result.errors).toEqual({ "503": 10, "400": 10 });
    expect(result.errorCount).toBe(20);
    expect(result.successes + result.errorCount).toBe(result.requests);
    expect(result.firstError).toMatch(/^(503|400): /);
  });

  it("turns a request past timeoutMs into a 'timeout' error instead of hanging", async () => {
    const result = await runLoad({ url, path: "/hang", concurrency: 2, requests: 2, bodies: [Buffer.from("{}")], timeoutMs: 300 });
    expect(result.errors).toEqual({ timeout: 2 });
    expect(result.latencyMs.count).toBe(0);
    expect(result.requestsPerSecond).toBe(0);
  });

  it("counts a refused connection as a 'connection' error", async () => {
    const closed = Fastify();
    const closedUrl = await closed.listen({ host: "127.0.0.1", port: 0 });
    await closed.close();
    const result = await runLoad({ url: closedUrl, path: "/", concurrency: 1, requests: 3, bodies: [Buffer.from("{}")] });
    expect(result.errors).toEqual({ connection: 3 });
  });

  it("sends real photos as {image: base64}, built once per file", async () => {
    seenImageLengths.clear();
    const files = await listImages(imagesDir);
    expect(files.length).toBe(5);
    const bodies = await imageBodies(files);
    const result = await runLoad({ url, path: "/echo", concurrency: 2, requests: 10, bodies });
    expect(result.successes).toBe(10);
    expect(seenImageLengths.size).toBe(5);
  });
});
