import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadFile, resolveModel, ModelNotFoundError, loadManifest, type ManifestEntry } from "../src/runtime/models.js";
import { image, modelsDir } from "./helpers/paths.js";

const served = readFileSync(image("skimage_chelsea.png"));
const sha256 = createHash("sha256").update(served).digest("hex");
let server: http.Server;
let base: string;
let requests = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests++;
    if (req.url === "/chelsea.png") {
      res.writeHead(200, { "content-type": "image/png" });
      // two chunks, so the hash really is computed while streaming
      res.write(served.subarray(0, 1000));
      setTimeout(() => res.end(served.subarray(1000)), 5);
    } else {
      res.writeHead(404).end("nope");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const tempDir = () => mkdtempSync(path.join(os.tmpdir(), "batchwise-models-"));

describe("downloadFile against a loopback HTTP server", () => {
  it("hash ok → the file is placed, byte-identical, no temp file left", async () => {
    const dir = tempDir();
    const dest = path.join(dir, "chelsea.png");
    await downloadFile({ url: `${base}/chelsea.png`, dest, sha256, size: served.length });
    expect(Buffer.compare(readFileSync(dest), served)).toBe(0);
    expect(readdirSync(dir)).toEqual(["chelsea.png"]);
  });

  it("hash mismatch → an error naming both hashes, and no file left behind", async () => {
    const dir = tempDir();
    const dest = path.join(dir, "chelsea.png");
    const wrong = "0".repeat(64);
    await expect(downloadFile({ url: `${base}/chelsea.png`, dest, sha256: wrong })).rejects.toThrow(/sha256 [0-9a-f]{64} does not match/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("HTTP error and unreachable host fail fast with a clear message", async () => {
    const dir = tempDir();
    await expect(downloadFile({ url: `${base}/missing`, dest: path.join(dir, "x"), sha256 })).rejects.toThrow(/answered 404/);
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const started = Date.now();
    await expect(downloadFile({ url: `http://127.0.0.1:${port}/x`, dest: path.join(dir, "x"), sha256 })).rejects.toThrow(/cannot reach/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("resolveModel", () => {
  it("an id resolves to a folder of BATCHWISE_MODELS_DIR", async () => {
    const model = await resolveModel("mobilenetv2-12", { modelsDir });
    expect(model).toMatchObject({ id: "mobilenetv2-12", dir: path.join(modelsDir, "mobilenetv2-12"), origin: "models-dir" });
  });

  it("a path to a folder or to one .onnx file is used as it is", async () => {
    const dir = path.join(modelsDir, "mobilenetv2-12");
    expect(await resolveModel(dir)).toMatchObject({ dir, origin: "path" });
    const file = path.join(dir, "mobilenetv2-12-int8.onnx");
    expect(await resolveModel(file)).toMatchObject({ dir, file, origin: "path" });
    await expect(resolveModel("/definitely/not/here")).rejects.toThrow(/does not exist/);
  });

  it("ids cannot escape the models dir", async () => {
    for (const id of ["a/../../etc", "..", "a/b/c", "x\\..\\y", ".hidden"]) {
      await expect(resolveModel(id, { modelsDir })).rejects.toBeInstanceOf(ModelNotFoundError);
    }
  });

  it("an unknown id says where it looked", async () => {
    await expect(resolveModel("no-such-model", { modelsDir })).rejects.toThrow(/no-such-model.*no folder .*no-such-model.*data\/models\.json/);
  });

  it("a listed id that is missing downloads from the manifest into the models dir", async () => {
    const root = tempDir();
    const manifest: Record<string, ManifestEntry> = {
      "cat-photo": { task: "test", description: "one file", files: [{ name: "chelsea.png", url: `${base}/chelsea.png`, sha256, size: served.length }] },
    };
    const model = await resolveModel("cat-photo", { modelsDir: root, manifest, download: true });
    expect(model.origin).toBe("downloaded");
    expect(Buffer.compare(readFileSync(path.join(root, "cat-photo", "chelsea.png")), served)).toBe(0);
    expect(readdirSync(root)).toEqual(["cat-photo"]); // no staging folder left
    const again = await resolveModel("cat-photo", { modelsDir: root, manifest, download: true });
    expect(again.origin).toBe("models-dir");
  });

  it("offline or broken download: fails fast with where it looked and how to get the files", async () => {
    const root = tempDir();
    const manifest: Record<string, ManifestEntry> = {
      broken: { task: "test", description: "bad hash", files: [{ name: "chelsea.png", url: `${base}/chelsea.png`, sha256: "f".repeat(64), size: served.length }] },
    };
    await expect(resolveModel("broken", { modelsDir: root, manifest, download: true })).rejects.toThrow(
      new RegExp(`not found in ${root}.*downloading it failed[^]*data/models.json[^]*BATCHWISE_MODELS_DIR[^]*--model`),
    );
    expect(existsSync(path.join(root, "broken"))).toBe(false);
    expect(readdirSync(root)).toEqual([]);
    await expect(resolveModel("broken", { modelsDir: root, manifest, download: false })).rejects.toThrow(/downloads are off/);
  });

  it("the shipped manifest lists the default classifier with hashes that match the local files", () => {
    const entry = loadManifest()["mobilenetv2-12"];
    expect(entry.files.some((f) => f.url && f.name.endsWith("int8.onnx"))).toBe(true);
    for (const file of entry.files) {
      const local = path.join(modelsDir, "mobilenetv2-12", file.name);
      if (!existsSync(local)) continue;
      const bytes = readFileSync(local);
      expect(bytes.length).toBe(file.size);
      expect(createHash("sha256").update(bytes).digest("hex")).toBe(file.sha256);
    }
  });
});

