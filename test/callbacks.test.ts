import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createServer, OptionError, type BatchwiseServer, type Callback, type CallbackContext, type ServerOptions } from "../src/index.js";
import { countApi } from "./fixtures/count-api.js";
import { FileCallback, fileCallbackModule } from "./fixtures/file-callback.js";
import { recordApi } from "./fixtures/record-api.js";

// Callbacks run at every step, on the thread where the step runs; one that throws is counted and never fails a request.

const dir = mkdtempSync(path.join(os.tmpdir(), "batchwise-callbacks-"));
const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const post = (url: string, body: unknown) =>
  fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};

/** Main-thread callback that writes down each call with what its context said. */
function recorder() {
  const calls: { hook: string; endpoint?: string; requestId?: string; status?: number; timings?: CallbackContext["timings"] }[] = [];
  const note = (hook: string) => (ctx: CallbackContext) => {
    calls.push({ hook, endpoint: ctx.endpoint, requestId: ctx.requestId, status: ctx.status, timings: { ...ctx.timings } });
  };
  const callback: Callback = {
    onServerStart: (ctx) => void calls.push({ hook: `onServerStart ${ctx.url} ${ctx.endpoints.join(",")}` }),
    onServerEnd: () => void calls.push({ hook: "onServerEnd" }),
    onRequest: note("onRequest"),
    onBeforeDecode: async (ctx) => {
      ctx.state.seen = true; // state travels from one method to the next of the same request
      await new Promise((resolve) => setTimeout(resolve, 1));
      note("onBeforeDecode")(ctx);
    },
    onAfterDecode: note("onAfterDecode"),
    onBeforeEncode: note("onBeforeEncode"),
    onAfterEncode: (ctx) => note(ctx.state.seen ? "onAfterEncode" : "onAfterEncode without state")(ctx),
    onResponse: note("onResponse"),
  };
  return { calls, callback };
}

describe("callbacks", () => {
  it("run in order with one context per request; predict-side ones run in the worker; failures are counted, not fatal", async () => {
    const file = path.join(dir, "worker.jsonl");
    writeFileSync(file, "");
    const { calls, callback } = recorder();
    const thrower: Callback = {
      onBeforeDecode: () => {
        throw new Error("sync throw");
      },
      onResponse: async () => {
        throw new Error("async rejection");
      },
    };
    const lines: string[] = [];
    const server = await createServer({
      api: recordApi(path.join(dir, "seen.txt")),
      workersPerDevice: 1,
      port: 0,
      log: (line) => lines.push(line),
      callbacks: [callback, { module: fileCallbackModule, export: "FileCallback", options: { file, throwIn: "onAfterPredict" } }, thrower],
    });
    servers.push(server);
    const url = await server.listen();
    for (const id of ["one", "two"]) expect((await post(url, { id })).status).toBe(200);
    await until(() => calls.filter((c) => c.hook === "onResponse").length === 2);

    expect(calls[0].hook).toBe(`onServerStart ${url} /predict`);
    const requests = calls.slice(1);
    const ids = [...new Set(requests.map((c) => c.requestId))];
    expect(ids).toHaveLength(2);
    for (const id of ids) {
      const mine = requests.filter((c) => c.requestId === id);
      expect(mine.map((c) => c.hook)).toEqual(["onRequest", "onBeforeDecode", "onAfterDecode", "onBeforeEncode", "onAfterEncode", "onResponse"]);
      expect(mine.every((c) => c.endpoint === "/predict")).toBe(true);
      const last = mine.at(-1)!;
      expect(last.status).toBe(200);
      expect(Object.keys(last.timings!)).toEqual(expect.arrayContaining(["decode", "queue", "predict", "encode", "total", "batchSize"]));
    }

    const worker = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line));
    expect(worker[0]).toEqual({ hook: "onWorkerSetup", endpoint: "/predict", workerId: 0, device: "cpu" });
    const befores = worker.filter((w) => w.hook === "onBeforePredict");
    expect(befores.map((w) => w.requestIds[0])).toEqual(ids); // the main thread's request ids reach the worker
    expect(befores.every((w) => w.batchSize === 1 && w.endpoint === "/predict")).toBe(true);
    expect(worker.filter((w) => w.hook === "onAfterPredict").every((w) => w.predict >= 0)).toBe(true);

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/batchwise_callback_errors_total\{hook="onBeforeDecode"\} 2/);
    expect(metrics).toMatch(/batchwise_callback_errors_total\{hook="onAfterPredict"\} 2/);
    expect(metrics).toMatch(/batchwise_callback_errors_total\{hook="onResponse"\} 2/);
    expect(lines.some((line) => /callback onBeforeDecode failed: sync throw/.test(line))).toBe(true);

    await server.close();
    expect(calls.at(-1)!.hook).toBe("onServerEnd");
  });

  it("the predict-side ones also run in-process (workersPerDevice: 0)", async () => {
    const file = path.join(dir, "inline.jsonl");
    writeFileSync(file, "");
    const url = await (async () => {
      const server = await createServer({
        api: recordApi(path.join(dir, "seen-inline.txt")),
        workersPerDevice: 0,
        port: 0,
        log: false,
        callbacks: [{ module: fileCallbackModule, export: "FileCallback", options: { file } }],
      });
      servers.push(server);
      return server.listen();
    })();
    expect((await post(url, { id: "x" })).status).toBe(200);
    const hooks = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line).hook);
    expect(hooks).toEqual(["onWorkerSetup", "onBeforePredict", "onAfterPredict"]);
  });

  it("a stream's response is seen too, once it ends", async () => {
    const { calls, callback } = recorder();
    const server = await createServer({ api: countApi({ stepMs: 2 }), stream: true, workersPerDevice: 1, port: 0, log: false, callbacks: [callback] });
    servers.push(server);
    const url = await server.listen();
    const answer = await post(url, { n: 3 });
    expect(await answer.text()).toBe('{"count":1}\n{"count":2}\n{"count":3}\n');
    await until(() => calls.some((c) => c.hook === "onResponse"));
    const hooks = calls.filter((c) => c.requestId).map((c) => c.hook);
    expect(hooks).toEqual(["onRequest", "onBeforeDecode", "onAfterDecode", ...Array(3).fill(["onBeforeEncode", "onAfterEncode"]).flat(), "onResponse"]);
    expect(calls.find((c) => c.hook === "onResponse")!.status).toBe(200);
  });

  it("a predict-side method given inline is refused: it must be importable by the worker", async () => {
    const options: ServerOptions = { api: recordApi(path.join(dir, "never.txt")), log: false, callbacks: [new FileCallback({ file: "/dev/null" })] };
    await expect(createServer(options)).rejects.toThrow(OptionError);
    await expect(createServer(options)).rejects.toThrow(/onWorkerSetup, onBeforePredict, onAfterPredict run in the model's worker thread/);
    await expect(createServer({ ...options, callbacks: [{ module: fileCallbackModule, export: "Nope" }] })).rejects.toThrow(/no export "Nope"/);
  });
});
