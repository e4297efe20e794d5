/**
 * The native JPEG path (native/jpeg_preprocess.c): where it is built (CI sets BATCHWISE_REQUIRE_NATIVE_JPEG=1 and
 * installs libturbojpeg0-dev, so there it must be), its output against the reference pipeline through the real
 * model, and the JPEGs it hands on to sharp.
 */
import { readdirSync, readFileSync } from "node:fs";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { ImageClassifierAPI } from "../src/classifier/image-classifier.js";
import { IMAGE_VALUES, preprocessImage, preprocessLevels, referencePreprocess, resizePlan } from "../src/classifier/image-preprocess.js";
import { nativeJpeg, nativeJpegStatus } from "../src/classifier/jpeg-native.js";
import { image, imagesDir } from "./helpers/paths.js";

const PLANE = 224 * 224;
const UNTOUCHED = 0xab;

it.runIf(process.env.BATCHWISE_REQUIRE_NATIVE_JPEG === "1")("the native JPEG path is built where it is required", () => {
  expect(nativeJpegStatus).toMatch(/^libjpeg-turbo/);
});

describe.skipIf(!nativeJpeg)("native JPEG preprocessing", () => {
  const native = nativeJpeg!;
  const plan = (width: number, height: number) => {
    const p = resizePlan(width, height);
    return new Float64Array([p.width, p.height, p.left, p.top, 224]);
  };
  let api: ImageClassifierAPI;
  beforeAll(async () => {
    api = new ImageClassifierAPI({ precision: "fp32", labels: "imagenet", topK: 1000 });
    await api.setup({ accelerator: "cpu", index: 0, threads: 1, id: "cpu" }, { workerId: 0, maxBatchSize: 5 });
  });

  it("on every sample JPEG: same top-1 as the reference pipeline, probabilities within 2e-2", async () => {
    const photos = readdirSync(imagesDir).filter((f) => /\.jpe?g$/i.test(f));
    expect(photos.length).toBeGreaterThanOrEqual(2);
    for (const photo of photos) {
      const bytes = readFileSync(image(photo));
      const { width, height } = await sharp(bytes).metadata();
      const out = new Uint8Array(IMAGE_VALUES);
      await native.preprocess(bytes, out, plan(width!, height!));
      const [a, b] = [await api.predict(api.batch([out])), await api.predict(api.batch([await referencePreprocess(bytes)]))];
      const argmax = (p: Float32Array) => p.indexOf(Math.max(...p));
      expect(argmax(a), photo).toBe(argmax(b));
      let max = 0;
      for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
      expect(max, photo).toBeLessThan(2e-2);
    }
  });

  it("a flat colour stays that colour, shrinking (DCT scale) or enlarging a small image", async () => {
    for (const [width, height] of [[1100, 900], [90, 120]]) {
      const jpeg = await sharp({ create: { width, height, channels: 3, background: { r: 20, g: 128, b: 240 } } })
        .jpeg({ quality: 100, chromaSubsampling: "4:4:4" })
        .toBuffer();
      const out = new Uint8Array(IMAGE_VALUES);
      await native.preprocess(jpeg, out, plan(width, height));
      for (const i of [0, 777, PLANE - 1]) {
        [20, 128, 240].forEach((value, c) => expect(Math.abs(out[c * PLANE + i] - value)).toBeLessThanOrEqual(2));
      }
    }
  });

  it("greyscale JPEGs become three equal channels; CMYK ones go on to sharp", async () => {
    const photo = readFileSync(image("darknet_dog.jpg"));
    const grey = await sharp(photo).greyscale().jpeg().toBuffer();
    const out = await preprocessLevels(grey);
    for (const i of [0, 4321, PLANE - 1]) {
      expect(out[i]).toBe(out[PLANE + i]);
      expect(out[i]).toBe(out[2 * PLANE + i]);
    }
    const cmyk = await sharp(photo).toColourspace("cmyk").jpeg().toBuffer();
    await expect(native.preprocess(cmyk, new Uint8Array(IMAGE_VALUES), plan(768, 576))).rejects.toThrow();
    const fromSharp = await preprocessImage(cmyk);
    expect(fromSharp.length).toBe(IMAGE_VALUES);
    expect(fromSharp.every(Number.isFinite)).toBe(true);
  });

  it("truncated or corrupt data is rejected, never crashes; bad arguments are a TypeError", async () => {
    const photo = readFileSync(image("darknet_dog.jpg"));
    const out = new Uint8Array(IMAGE_VALUES);
    await expect(native.preprocess(photo.subarray(0, photo.length >> 1), out, plan(768, 576))).rejects.toThrow(/premature|end/i);
    await expect(native.preprocess(Buffer.from("not a jpeg at all"), out, plan(768, 576))).rejects.toThrow();
    expect(() => native.preprocess(photo, new Uint8Array(10) as never, "x" as never)).toThrow(TypeError);
    await expect(native.preprocess(photo, new Uint8Array(10), plan(768, 576))).rejects.toThrow(/does not fit/);
    expect(() => native.preprocess(photo, new Float32Array(IMAGE_VALUES) as never, plan(768, 576))).toThrow(/Uint8Array/);
    const zeroCrop = plan(768, 576);
    zeroCrop[4] = 0;
    await expect(native.preprocess(photo, out, zeroCrop)).rejects.toThrow(/out of range/);
  });

  it("3,040 mutated JPEGs with random plans, 16 at a time on the libuv pool: every call settles, every failure is a rejected Error", async () => {
    const photo = await sharp(readFileSync(image("darknet_dog.jpg"))).resize(64, 48).toBuffer();
    const seeds = [
      await sharp(photo).jpeg({ quality: 80 }).toBuffer(),
      await sharp(photo).jpeg({ quality: 90, progressive: true }).toBuffer(),
      await sharp(photo).jpeg({ quality: 95, chromaSubsampling: "4:4:4" }).toBuffer(),
      await sharp(photo).greyscale().jpeg().toBuffer(),
      await sharp(photo).toColourspace("cmyk").jpeg().toBuffer(),
    ];
    let state = 42;
    const random = (n: number) => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return (state >>> 8) % n;
    };
    const mutate = (seed: Buffer): Buffer => {
      let bytes = Buffer.from(seed);
      const kind = random(5);
      if (kind === 0) for (let i = 0, n = 1 + random(8); i < n; i++) bytes[random(bytes.length)] ^= 1 << random(8);
      else if (kind === 1) bytes = bytes.subarray(0, random(bytes.length));
      else if (kind === 2) {
        const at = random(bytes.length);
        const marker = [0xd0 + random(8), 0xc4, 0xda, 0xd9, 0xdd, 0xc2, 0xc0][random(7)];
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff, marker]), bytes.subarray(at)]);
      } else if (kind === 3) {
        const sof = bytes.findIndex((b, i) => b === 0xff && (bytes[i + 1] === 0xc0 || bytes[i + 1] === 0xc2));
        if (sof >= 0) bytes.writeUInt16BE([0, 1, 65535, 8192, random(65536)][random(5)], sof + 5 + 2 * random(2));
      } else {
        const at = random(bytes.length), length = random(200);
        bytes = Buffer.concat([bytes.subarray(0, at + length), bytes.subarray(at)]);
      }
      return bytes;
    };
    const hostile = [NaN, Infinity, -Infinity, -1, 0, 0.5, 2 ** 31, 1e300, 65537];
    const randomPlan = () => {
      const p = plan(64, 48);
      const kind = random(4);
      if (kind === 1) {
        const [w, h, crop] = [1 + random(1024), 1 + random(1024), 1 + random(224)];
        p.set([w, h, random(Math.max(1, w - crop + 2)), random(Math.max(1, h - crop + 2)), crop]);
      } else if (kind === 2) p[random(5)] = hostile[random(hostile.length)];
      return p;
    };
    let resolved = 0;
    let rejected = 0;
    for (let round = 0; round < 190; round++) {
      const calls = Array.from({ length: 16 }, () => {
        const out = new Uint8Array(IMAGE_VALUES).fill(UNTOUCHED);
        const p = randomPlan();
        return native.preprocess(mutate(seeds[random(seeds.length)]), out, p).then(() => ({ out, crop: p[4] }));
      });
      for (const result of await Promise.allSettled(calls)) {
        if (result.status === "fulfilled") {
          resolved++;
          const { out, crop } = result.value;
          expect(out.subarray(crop * crop * 3).every((v) => v === UNTOUCHED)).toBe(true); // nothing written past the crop
        } else {
          rejected++;
          expect(result.reason).toBeInstanceOf(Error);
          expect((result.reason as Error).message.length).toBeGreaterThan(0);
        }
      }
    }
    expect(resolved + rejected).toBe(3040);
    expect(resolved).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });

  it("a plan with NaN, infinities, fractions, negative or huge sizes is rejected, never cast", async () => {
    const photo = readFileSync(image("darknet_dog.jpg"));
    const out = new Uint8Array(IMAGE_VALUES);
    const cases: Array<[number, number, RegExp]> = [
      [0, NaN, /not finite/], [1, Infinity, /not finite/], [4, -Infinity, /not finite/], [2, -1, /out of range/],
      [3, 1.5, /out of range/], [0, 2 ** 31, /out of range/], [4, 5000, /out of range/], [4, 0.5, /out of range/],
      [2, 200, /does not fit/],
    ];
    for (const [index, value, message] of cases) {
      const p = plan(768, 576);
      p[index] = value;
      await expect(native.preprocess(photo, out, p), `plan[${index}] = ${value}`).rejects.toThrow(message);
    }
  });
});
