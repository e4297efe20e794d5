import { afterEach, describe, expect, it } from "vitest";
import { OptionError } from "../src/server/options.js";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/server/server.js";
import { failingApi, SECRET, stepsApi } from "./fixtures/failing-api.js";
import { faultyApi } from "./fixtures/faulty-api.js";

// Streaming is decided when the server starts (an async-generator predict needs `stream: true`, and `stream: true`
// needs a predict that streams), and each item of a streaming batch ends on its own: END_OF_STREAM closes that
// item's response at once while its batch-mates go on.

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: Partial<ServerOptions>) {
  const lines: string[] = [];
  const server = await createServer({ api: stepsApi(), port: 0, log: (line) => lines.push(line), ...options });
  servers.push(server);
  return { url: await server.listen(), lines };
}

/** Read an NDJSON stream; `done` resolves with its lines, and `progress()` says how many arrived so far. */
function readStream(url: string, body: unknown) {
  const lines: Record<string, unknown>[] = [];
  const done = (async () => {
    const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(response.status).toBe(200);
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of response.body!) {
      text += decoder.decode(chunk, { stream: true });
      const parts = text.split("\n");
      text = parts.pop()!;
      for (const part of parts) if (part) lines.push(JSON.parse(part));
    }
    return lines;
  })();
  return { done, progress: () => lines.length };
}

describe("streaming is checked when the server starts", () => {
  it("an async-generator predict without stream: true is refused, naming the option", async () => {
    const error = await createServer({ api: stepsApi(), port: 0, log: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptionError);
    expect((error as Error).message).toMatch(/StepsAPI\.predict is an async generator: set `stream: true`/);
  });

  it("stream: true with an async (one-Promise) predict is refused, naming the option", async () => {
    const error = await createServer({ api: faultyApi(), stream: true, port: 0, log: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptionError);
    expect((error as Error).message).toMatch(/`stream: true` needs predict to stream, but FaultyAPI\.predict is an async method/);
  });
});

describe("items of a streaming batch end independently", () => {
  it("a 2-step item's response completes while its 50-step batch-mate is still streaming", async () => {
    const { url } = await start({ stream: true, maxBatchSize: 8, batchTimeout: 1 });
    // the blocker keeps the worker busy, so the next two queue up and are dispatched together as one batch
    const blocker = readStream(url, { n: 10 });
    while (blocker.progress() === 0) await new Promise((r) => setTimeout(r, 5));
    const long = readStream(url, { n: 50 });
    const short = readStream(url, { n: 2 });
    const shortLines = await short.done;
    const longLinesWhenShortEnded = long.progress();
    const longLines = await long.done;
    await blocker.done;
    expect(shortLines).toEqual([{ step: 1, batch: 2 }, { step: 2, batch: 2 }]);
    expect(longLines).toHaveLength(50);
    expect(longLines[0]).toEqual({ step: 1, batch: 2 }); // they did share one batch
    // ordering, not timing: the short response was complete before the long one was half-way
    expect(longLinesWhenShortEnded).toBeLessThan(25);
  });

  it("a stream that fails mid-way is logged once with its request id; the client's stream is cut without the message", async () => {
    const { url, lines } = await start({ api: stepsApi(), stream: true });
    const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n: 3, fail: true }) });
    const id = response.headers.get("x-request-id")!;
    const text = await response.text().catch(() => "(cut)");
    expect(text).not.toContain(SECRET);
    const entries = lines.filter((line) => line.includes(` request ${id} `));
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(/^predict_failed request \S+ \/predict: Error: stream broke at step 3/);
  });

  it("a non-streaming API is unaffected by the check", async () => {
    const { url } = await start({ api: failingApi() });
    const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"value": 4}' });
    expect(await response.json()).toEqual({ value: 4 });
  });
});
