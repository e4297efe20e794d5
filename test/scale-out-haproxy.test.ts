/**
 * The HAProxy configuration of the scale-out check and benchmark (scripts/haproxy/cluster.ts): real HAProxy accepts
 * it, it health-checks /readyz and retries on other replicas, and its buffer holds every sample photo in both body
 * forms (HAProxy cannot retry a request larger than its buffer). The check itself (3 replicas under load, SIGTERM
 * and SIGKILL) is scripts/scale-out-check.ts, run by .ci/run: it takes minutes, too long for the unit suite.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { imagePayloads, listImages } from "../src/bench/load/load.js";
import { checkBodiesFitBuffer, HAPROXY_BUFSIZE, haproxyConfig } from "../scripts/haproxy/cluster.js";
import { imagesDir } from "./helpers/paths.js";

const haproxy = ["/usr/sbin/haproxy", "haproxy"].find((bin) => spawnSync(bin, ["-v"]).status === 0);

describe("scale-out HAProxy configuration", () => {
  const config = haproxyConfig({ frontPort: 18080, statsPort: 18081, servers: [{ name: "r1", port: 18082 }, { name: "r2", port: 18083 }] });

  it.skipIf(!haproxy)("is accepted by haproxy -c", () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "batchwise-haproxy-test-")), "haproxy.cfg");
    writeFileSync(file, config);
    const result = spawnSync(haproxy!, ["-c", "-f", file], { encoding: "utf8" });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it("checks /readyz, binds loopback only, and retries failed requests on another replica", () => {
    expect(config).toMatch(/option httpchk GET \/readyz/);
    expect(config).toMatch(/retry-on conn-failure empty-response response-timeout/);
    expect(config).toMatch(/option redispatch 1/);
    for (const bind of config.match(/^\s*bind (\S+)/gm)!) expect(bind).toMatch(/127\.0\.0\.1:/);
    for (const server of config.match(/^\s*server \S+ (\S+)/gm)!) expect(server).toMatch(/127\.0\.0\.1:/);
  });

  it("holds every sample photo whole, as base64 JSON and as a raw body", async () => {
    const files = await listImages(imagesDir);
    for (const form of ["json", "binary"] as const) {
      const payloads = await imagePayloads(files, form);
      expect(() => checkBodiesFitBuffer(payloads)).not.toThrow();
    }
    expect(() => checkBodiesFitBuffer([{ body: Buffer.alloc(HAPROXY_BUFSIZE) }])).toThrow(/does not fit/);
  });
});
