import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { createServer, type BatchwiseServer } from "../src/index.js";
import { echoApi } from "./fixtures/echo-api.js";
import { image } from "./helpers/paths.js";

// Binary uploads reach decodeRequest as bytes: a raw body with the image's type, or a multipart/form-data file (what
// FastAPI/LitServe clients send as UploadFile). Answers must equal the base64-JSON form's, on the real model.

let server: BatchwiseServer;
let url: string;
const photos = ["darknet_dog.jpg", "pytorchhub_dog.jpg", "skimage_chelsea.png", "imageio_wikkie.png", "skimage_coffee.png"];

beforeAll(async () => {
  server = await createServer({
    endpoints: [
      { api: imageClassifier({ labels: "imagenet", precision: "int8" }), path: "/predict", maxBatchSize: 8, workersPerDevice: 1 },
      { api: echoApi(), path: "/echo", workersPerDevice: 1 },
    ],
    maxPayloadSize: 1024 * 1024,
    port: 0,
    log: false,
  });
  url = await server.listen();
});
afterAll(() => server?.close());

const post = async (path: string, body: NonNullable<Parameters<typeof fetch>[1]>["body"], headers: Record<string, string> = {}) => {
  const response = await fetch(`${url}${path}`, { method: "POST", body, headers });
  return { status: response.status, body: (await response.json()) as any };
};
const typeOf = (name: string) => (name.endsWith(".png") ? "image/png" : "image/jpeg");

describe("binary uploads", () => {
  it.each(photos)("%s: raw body, octet-stream and multipart file answer exactly as base64 JSON does", async (name) => {
    const bytes = readFileSync(image(name));
    const json = await post("/predict", JSON.stringify({ image: bytes.toString("base64") }), { "content-type": "application/json" });
    expect(json.status).toBe(200);
    const raw = await post("/predict", bytes, { "content-type": typeOf(name) });
    const octets = await post("/predict", bytes, { "content-type": "application/octet-stream" });
    const form = new FormData();
    form.append("caption", "a photo");
    form.append("file", new Blob([bytes], { type: typeOf(name) }), name);
    const multipart = await post("/predict", form);
    for (const answer of [raw, octets, multipart]) expect(answer).toEqual(json);
  });

  it("a WebP body is taken too", async () => {
    const sharp = (await import("sharp")).default;
    const webp = await sharp(readFileSync(image("skimage_chelsea.png"))).webp().toBuffer();
    const answer = await post("/predict", webp, { "content-type": "image/webp" });
    expect(answer.status).toBe(200);
    expect(answer.body.predictions[0].label).toMatch(/cat/i);
  });

  it("the same limits and error shapes as JSON: 413, 415, 400 for a broken image or a form without a file", async () => {
    const bytes = readFileSync(image("darknet_dog.jpg"));
    expect(await post("/predict", Buffer.alloc(2 * 1024 * 1024, 1), { "content-type": "image/jpeg" })).toMatchObject({
      status: 413,
      body: { error: { code: "payload_too_large" } },
    });
    const gif = await post("/predict", bytes, { "content-type": "image/gif" });
    expect(gif.status).toBe(415);
    expect(gif.body.error.code).toBe("unsupported_media_type");
    expect(gif.body.error.message).toMatch(/image\/gif is not supported; send application\/json, multipart\/form-data or image\/jpeg/);
    expect(await post("/predict", bytes.subarray(0, 4000), { "content-type": "image/jpeg" })).toMatchObject({
      status: 400,
      body: { error: { code: "truncated_image" } },
    });
    expect(await post("/predict", Buffer.from("not an image at all"), { "content-type": "application/octet-stream" })).toMatchObject({
      status: 400,
      body: { error: { code: "not_an_image" } },
    });
    expect(await post("/predict", Buffer.alloc(0), { "content-type": "image/png" })).toMatchObject({ status: 400 });
    const noFile = new FormData();
    noFile.append("caption", "no file here");
    expect(await post("/predict", noFile)).toMatchObject({ status: 400, body: { error: { code: "missing_file" } } });
    const broken = await post("/predict", "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nabc", {
      "content-type": "multipart/form-data; boundary=x",
    });
    expect(broken.status).toBe(400);
  });

  it("an endpoint whose API takes no binary types answers 415 to a raw image, on the same server", async () => {
    const answer = await post("/echo", readFileSync(image("darknet_dog.jpg")), { "content-type": "image/jpeg" });
    expect(answer.status).toBe(415);
    expect(answer.body.error.message).toBe("Content-Type image/jpeg is not supported; send application/json");
    expect((await post("/echo", JSON.stringify({ a: 1 }), { "content-type": "application/json" })).status).toBe(200);
  });
});
