import http from "node:http";
import os from "node:os";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createServer } from "../src/server/server.js";
import { startChild } from "./fixtures/child-server.js";
import { image } from "./helpers/paths.js";

/** GET on a connection of its own, so node:cluster may hand it to another API server. */
function getFresh(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

describe("apiServers: several HTTP processes on one port", () => {
  it("the CLI with --api-servers 2: both processes answer on one port, each classifies, and SIGTERM stops them all", async () => {
    const child = await startChild(
      ["src/cli.ts", "serve", "classifier", "--port", "0", "--api-servers", "2", "--workers", "1", "--drain-period", "0"],
      /serving \/predict at (http:\/\/[\d.]+:\d+)\//,
      120_000,
    );
    try {
      const seen = new Map<number, number>();
      for (let i = 0; i < 60 && seen.size < 2; i++) {
        const { status, body } = await getFresh(`${child.url}/info`);
        if (status !== 200) continue; // the second process may still be setting up its model (503 until ready)
        const info = JSON.parse(body) as { apiServers: number; apiServer: number; endpoints: { threadsPerWorker: number }[] };
        expect(info.apiServers).toBe(2);
        // the cores are split between both processes' workers: 2 workers on this 2-core machine → 1 thread each
        expect(info.endpoints[0].threadsPerWorker).toBe(Math.max(1, Math.floor(os.availableParallelism() / 2)));
        seen.set(info.apiServer, (seen.get(info.apiServer) ?? 0) + 1);
      }
      expect([...seen.keys()].sort()).toEqual([1, 2]);
      const body = JSON.stringify({ image: readFileSync(image("darknet_dog.jpg")).toString("base64") });
      const answers = await Promise.all(
        Array.from({ length: 8 }, () => fetch(`${child.url}/predict`, { method: "POST", body, headers: { "content-type": "application/json" } }).then((r) => r.json())),
      );
      for (const answer of answers) expect((answer as { predictions: { label: string }[] }).predictions[0].label).toBe("Dog");
      child.child.kill("SIGTERM");
      expect(await child.exited).toEqual({ code: 0, signal: null });
      expect(child.stderr()).toMatch(/2 API servers/);
    } finally {
      child.child.kill("SIGKILL");
    }
  }, 180_000);

  it("createServer alone refuses apiServers > 1 (it builds one server; serve() and the CLI start the processes)", async () => {
    await expect(createServer({ api: class {} as never, apiServers: 2 })).rejects.toThrow(/apiServers > 1 needs serve\(\) or the CLI/);
  });
});
