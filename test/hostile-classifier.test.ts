import { readFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { expectCleanError, rawPost, rawRequest } from "./fixtures/raw-http.js";
import { image } from "./helpers/paths.js";

// Hostile and malformed input against the real classifier (MobileNetV2 int8 in a worker thread, batching on) and
// the server's own routes, while a steady stream of valid requests runs beside it: every bad request gets a quick
// 4xx in the catalogue's shape, valid ones keep succeeding, nothing crashes or hangs.

const REQUEST_TIMEOUT_S = 2;
const MAX_PAYLOAD = 4 * 1024 * 1024;
let server: BatchwiseServer;
let url: string;
const cat = readFileSync(image("skimage_chelsea.png"));
const dogJpeg = readFileSync(image("darknet_dog.jpg"));

/** Valid traffic beside the attacks: 2 clients in a loop; each answer must be 200 with the right label. */
const valid = { sent: 0, ok: 0, failures: [] as string[], running: true, loops: [] as Promise<void>[] };

beforeAll(async () => {
  server = await createServer({
    api: imageClassifier({ labels: "cat-dog", precision: "int8" }),
    maxBatchSize: 8,
    batchTimeout: 0.005,
    accelerator: "cpu",
    maxPayloadSize: MAX_PAYLOAD,
    requestTimeout: REQUEST_TIMEOUT_S,
    port: 0,
    log: false,
  });
  url = await server.listen();
  const body = JSON.stringify({ image: cat.toString("base64") });
  const client = async () => {
    while (valid.running) {
      valid.sent++;
      const response = await post(body);
      const text = await response.text();
      if (response.status === 200 && JSON.parse(text).predictions[0].label === "Cat") valid.ok++;
      else valid.failures.push(`${response.status} ${text.slice(0, 200)}`);
    }
  };
  valid.loops = [client(), client()];
});
afterAll(async () => {
  valid.running = false;
  await Promise.all(valid.loops);
  await server?.close();
});

function post(body: string | Buffer, contentType = "application/json") {
  return fetch(`${url}/predict`, { method: "POST", headers: { "content-type": contentType }, body });
}

/** POST and check the error contract; returns the error's code. */
async function rejected(body: string | Buffer, statuses: number[] | "4xx" = "4xx", contentType?: string) {
  const started = performance.now();
  const response = await post(body, contentType);
  const error = expectCleanError(response.status, await response.text(), statuses);
  // not a timing claim: a rejected request must not sit in the queue behind inference (a hang guard)
  expect(performance.now() - started).toBeLessThan(10_000);
  return error.code;
}

const b64 = (bytes: Buffer) => JSON.stringify({ image: bytes.toString("base64") });

function crc32(bytes: Buffer): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A PNG whose header declares width × height RGB pixels, with 10 kB of pixel data (20 bytes compressed). */
function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const idat = deflateSync(Buffer.alloc(10_000));
  return Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), pngChunk("IHDR", ihdr), pngChunk("IDAT", idat), pngChunk("IEND", Buffer.alloc(0))]);
}

/** A baseline JPEG whose frame header (SOF0) declares width × height, followed by a stub scan. */
function jpegBomb(width: number, height: number): Buffer {
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, 0, 0, 0, 0, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
  sof.writeUInt16BE(height, 5);
  sof.writeUInt16BE(width, 7);
  const sos = Buffer.from([0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), sof, sos, Buffer.alloc(64, 0x55), Buffer.from([0xff, 0xd9])]);
}

/** An extended WebP (VP8X) whose canvas is width × height. */
function webpBomb(width: number, height: number): Buffer {
  const vp8x = Buffer.alloc(18);
  vp8x.write("VP8X", 0, "latin1");
  vp8x.writeUInt32LE(10, 4);
  vp8x.writeUIntLE(width - 1, 12, 3);
  vp8x.writeUIntLE(height - 1, 15, 3);
  const riff = Buffer.alloc(12);
  riff.write("RIFF", 0, "latin1");
  riff.writeUInt32LE(4 + vp8x.length, 4);
  riff.write("WEBP", 8, "latin1");
  return Buffer.concat([riff, vp8x]);
}

describe("hostile input to the classifier", () => {
  it("wrong content types get 415 with a message that names what is taken; a JSON text sent as an image is a 400", async () => {
    const body = b64(cat);
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "image/gif", "application/xml"]) {
      expect(await rejected(body, [415], type), type).toBe("unsupported_media_type");
    }
    // image types and multipart are taken as uploads now: the bytes must then be an image, or a valid form
    expect(await rejected(body, [400], "image/png")).toBe("not_an_image");
    expect(await rejected(body, [400], "multipart/form-data; boundary=x")).toMatch(/^(invalid_multipart|missing_file)$/);
    const none = await rawRequest(url, `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
    expect(expectCleanError(none.status, none.body, [415]).message).toContain("application/json");
  });

  it("invalid, truncated and non-object JSON bodies are 400s", async () => {
    for (const body of ["{", '{"image": "abc"', "nope", '{"image": }', "\u0000\u0001\u0002", "", "[]", "42", '"text"', "null", "true", "[{}]"]) {
      await rejected(body, [400]);
    }
  });

  it("deeply nested JSON is a 400, not a crash", async () => {
    const depth = 100_000;
    expect(await rejected(`{"deep": ${"[".repeat(depth)}${"]".repeat(depth)}}`, [400])).toBe("nested_too_deep");
    expect(await rejected(`{"image": ${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`, [400])).toBe("nested_too_deep");
  });

  it("prototype-pollution keys are refused, and nothing is polluted", async () => {
    const image = cat.toString("base64");
    await rejected(`{"__proto__": {"polluted": true}, "image": "${image}"}`, [400]);
    await rejected(`{"constructor": {"prototype": {"polluted": true}}, "image": "${image}"}`, [400]);
    await rejected(`{"image": {"__proto__": {"polluted": true}}}`, [400]);
    await rejected(`{"nested": [{"a": {"__proto__": {"polluted": true}}}], "image": "${image}"}`, [400]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  it("wrong field types name the field", async () => {
    // The classifier's requestSchema: fastify's validator answers these before decodeRequest (invalid_body, the field
    // and the rule in the message: test/typed-requests.test.ts).
    for (const value of [123, true, [], ["abc"], {}, { data: "abc" }, null]) {
      const code = await rejected(JSON.stringify({ image: value }), [400]);
      expect(code).toBe("invalid_body");
    }
    expect(await rejected(JSON.stringify({ picture: cat.toString("base64") }), [400])).toBe("invalid_body");
  });

  it("huge strings under the body limit and bodies over it", async () => {
    // 3 MiB of valid base64 that decodes to zeros: not an image
    expect(await rejected(JSON.stringify({ image: "A".repeat(3 * 1024 * 1024) }), [400])).toBe("not_an_image");
    // 3 MiB of characters outside base64
    expect(await rejected(JSON.stringify({ image: "%".repeat(3 * 1024 * 1024) }), [400])).toBe("invalid_base64");
    // a 3 MiB field name and an image
    await rejected(`{"${"k".repeat(3 * 1024 * 1024)}": 1}`, [400]);
    const tooBig = await rejected(JSON.stringify({ image: "A".repeat(MAX_PAYLOAD) }), [413]);
    expect(tooBig).toBe("payload_too_large");
    // the declared length alone is over the limit: refused before the body arrives
    const declared = await rawRequest(
      url,
      `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_PAYLOAD * 100}\r\n\r\n{"image": "`,
    );
    expect(declared.status).toBe(413);
  });

  it("oversized headers get 431 in the catalogue's shape", async () => {
    const response = await rawPost(url, "/predict", b64(cat), "application/json", `X-Padding: ${"a".repeat(64 * 1024)}\r\n`);
    expect(expectCleanError(response.status, response.body, [431]).code).toBe("headers_too_large");
  });

  it("broken HTTP framing gets a 400 and a closed connection, never a hang", async () => {
    const framings = [
      "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      // both framings at once: the request-smuggling shape, refused by Node's parser
      "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
      "GARBAGE\r\n\r\n",
      "POST /predict HTTP/9.9\r\nHost: x\r\n\r\n",
      "POST /pre\u0000dict HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for (const payload of framings) {
      const response = await rawRequest(url, payload);
      expect(response.closed, payload).toBe(true);
      expectCleanError(response.status, response.body, [400]);
    }
  });

  it("truncated, random-byte and corrupt images are 400s", async () => {
    expect(await rejected(b64(dogJpeg.subarray(0, dogJpeg.length >> 1)), [400])).toBe("truncated_image");
    expect(await rejected(b64(cat.subarray(0, cat.length >> 1)), [400])).toMatch(/truncated_image|invalid_image/);
    expect(await rejected(b64(dogJpeg.subarray(0, 200)), [400])).toMatch(/truncated_image|invalid_image/);
    let seed = 7;
    const random = Buffer.from(Array.from({ length: 50_000 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    expect(await rejected(b64(random), [400])).toBe("not_an_image");
    // random bytes behind valid signatures
    expect(await rejected(b64(Buffer.concat([dogJpeg.subarray(0, 4), random])), [400])).toMatch(/invalid_image|truncated_image/);
    expect(await rejected(b64(Buffer.concat([cat.subarray(0, 8), random])), [400])).toMatch(/invalid_image|truncated_image/);
    expect(await rejected(b64(Buffer.from("RIFF\x00\x00\x00\x00WEBPVP8 garbage", "latin1")), [400])).toMatch(/invalid_image|truncated_image/);
  });

  it("decompression bombs are refused from the header (413) before any pixel is decoded", async () => {
    for (const bomb of [pngBomb(60_000, 60_000), jpegBomb(60_000, 60_000)]) {
      const started = performance.now();
      expect(await rejected(b64(bomb), [413])).toBe("image_too_large");
      expect(performance.now() - started).toBeLessThan(5_000); // decoding 3.6 GP would take minutes and 10 GB
    }
    // sizes the decoders themselves refuse, and WebP's canvas header without frame data: refused, never decoded
    for (const bomb of [pngBomb(2 ** 31 - 1, 2 ** 31 - 1), jpegBomb(65_535, 65_535), webpBomb(16_384, 16_384)]) {
      expect(await rejected(b64(bomb), [400, 413])).toMatch(/image_too_large|invalid_image/);
    }
    // a real, complete 7000×6000 JPEG (42 MP, 240 kB): over the 40 MP default limit
    const big = await sharp({ create: { width: 7000, height: 6000, channels: 3, background: "#2c4" } }).jpeg({ quality: 40 }).toBuffer();
    expect(await rejected(b64(big), [413])).toBe("image_too_large");
  });

  it("formats that can reference files or are not served: SVG, GIF, TIFF, BMP, PDF, HTML", async () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><image xlink:href="file:///etc/passwd" width="10" height="10"/></svg>`;
    for (const text of [svg, `<?xml version="1.0"?>\n${svg}`, `   \n${svg}`]) {
      expect(await rejected(b64(Buffer.from(text)), [400])).toBe("unsupported_image_format");
    }
    const gif = await sharp(cat).gif().toBuffer();
    const tiff = await sharp(cat).tiff().toBuffer();
    for (const bytes of [gif, tiff, Buffer.from("BM\x00\x00\x00\x00", "latin1"), Buffer.from("%PDF-1.7\n", "latin1")]) {
      expect(await rejected(b64(bytes), [400])).toBe("unsupported_image_format");
    }
    expect(await rejected(b64(Buffer.from("<html><img src=x onerror=alert(1)></html>")), [400])).toBe("not_an_image");
    // data: URLs must be base64 image data, not a way to name something else
    expect(await rejected(JSON.stringify({ image: "data:text/plain,hello" }), [400])).toBe("invalid_base64");
    expect(await rejected(JSON.stringify({ image: "file:///etc/passwd" }), [400])).toMatch(/invalid_base64|not_an_image/);
  });

  it("a request that never finishes is closed with 408 within the request timeout; the server goes on", async () => {
    const cases = [
      // headers and part of the body, then nothing
      `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"image": "iVBOR`,
      // part of the headers, then nothing
      `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty`,
      // a chunked body that never ends
      `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"ima\r\n`,
    ];
    const results = await Promise.all(cases.map((payload) => rawRequest(url, payload, 20_000)));
    for (const result of results) {
      expect(result.closed).toBe(true);
      // Node checks timeouts once a second (connectionsCheckingInterval): closed within the timeout + 1 s + slack
      expect(result.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_S * 1000 + 2500);
      expect(result.closedAfterMs).toBeGreaterThan(REQUEST_TIMEOUT_S * 1000 - 100);
      expect(expectCleanError(result.status, result.body, [408]).code).toBe("request_timeout");
    }
    expect((await post(b64(dogJpeg))).status).toBe(200);
  });
});

describe("hostile input to /health, /info, /metrics and unknown routes", () => {
  it("wrong methods and unknown paths are 404s in the catalogue's shape", async () => {
    const attempts: [string, string][] = [
      ["POST", "/health"], ["PUT", "/health"], ["DELETE", "/info"], ["POST", "/metrics"], ["PATCH", "/predict"],
      ["GET", "/predict"], ["OPTIONS", "/predict"], ["GET", "/../../etc/passwd"], ["GET", "/%2e%2e/%2e%2e/etc/passwd"],
      ["GET", "/info/../../../etc/passwd"], ["GET", "//health"], ["GET", "/HEALTH"], ["GET", "/health%00"],
    ];
    for (const [method, path] of attempts) {
      const response = await rawRequest(url, `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expectCleanError(response.status, response.body, [400, 404]);
    }
    const trace = await rawRequest(url, "TRACE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(trace.status).toBeGreaterThanOrEqual(400);
    expect(trace.body).not.toContain("Host: x"); // TRACE must not echo the request
  });

  it("query strings, bodies and odd headers on GET routes change nothing", async () => {
    const longQuery = `?${"a=1&".repeat(2000)}`;
    for (const path of ["/health", "/info", "/metrics"]) {
      const plain = await fetch(`${url}${path}`);
      expect(plain.status).toBe(200);
      const odd = await rawRequest(
        url,
        `GET ${path}${longQuery} HTTP/1.1\r\nHost: x\r\nAccept: */*;q=\u00ff\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"a": [1]`,
      );
      expect(odd.status, path).toBe(200);
    }
    const invalidEncoding = await rawRequest(url, "GET /info?x=%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(invalidEncoding.status).toBeLessThan(500);
    const badPathEncoding = await rawRequest(url, "GET /inf%o HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expectCleanError(badPathEncoding.status, badPathEncoding.body, [400, 404]);
    const info = await (await fetch(`${url}/info`)).text();
    expect(info).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it("valid requests sent beside all of the above kept succeeding; the server is healthy", async () => {
    valid.running = false;
    await Promise.all(valid.loops);
    expect(valid.failures).toEqual([]);
    expect(valid.ok).toBeGreaterThan(5);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).not.toMatch(/status="5\d\d"/);
  });
});
