import { readFileSync } from "node:fs";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  preprocessBase64,
  preprocessImage,
  preprocessLevels,
  referencePreprocess,
  resizePlan,
  scanJpeg,
} from "../src/classifier/image-preprocess.js";
import { image } from "./helpers/paths.js";

const PLANE = 224 * 224;
const expected = (value: number, channel: number) => (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel];

/** A 320×256 PNG whose pixel (x, y) is (x mod 256, y, (3x + 7y) mod 256): short side already 256, so no resize. */
async function gradientPng(channels: 1 | 3 | 4): Promise<{ png: Buffer; pixel: (x: number, y: number) => number[] }> {
  const width = 320;
  const height = 256;
  const pixel = (x: number, y: number) => [x % 256, y, (3 * x + 7 * y) % 256, 200].slice(0, channels);
  const raw = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(pixel(x, y), (y * width + x) * channels);
  const png = await sharp(raw, { raw: { width, height, channels } }).png().toBuffer();
  return { png, pixel };
}

describe("preprocessing", () => {
  it("crops the centre and normalises exactly like torchvision (pixel values at chosen positions)", async () => {
    const { png, pixel } = await gradientPng(3);
    const out = await preprocessImage(png);
    expect(out.length).toBe(3 * PLANE);
    // resize plan: 320×256 stays 320×256; crop left = (320 − 224) / 2 = 48, top = 16
    for (const [x, y] of [[0, 0], [223, 0], [0, 223], [100, 57], [223, 223]]) {
      const source = pixel(x + 48, y + 16);
      for (let c = 0; c < 3; c++) expect(out[c * PLANE + y * 224 + x]).toBeCloseTo(expected(source[c], c), 5);
    }
  });

  it("drops alpha and turns greyscale into three equal channels", async () => {
    const rgba = await gradientPng(4);
    const rgbaOut = await preprocessImage(rgba.png);
    const [r, g, b] = rgba.pixel(48 + 10, 16 + 20);
    const i = 20 * 224 + 10;
    expect([rgbaOut[i], rgbaOut[PLANE + i], rgbaOut[2 * PLANE + i]].map((v) => +v.toFixed(4))).toEqual(
      [expected(r, 0), expected(g, 1), expected(b, 2)].map((v) => +v.toFixed(4)),
    );
    const grey = await gradientPng(1);
    const greyOut = await preprocessImage(grey.png);
    const [v] = grey.pixel(48 + 10, 16 + 20);
    for (let c = 0; c < 3; c++) expect(greyOut[c * PLANE + i]).toBeCloseTo(expected(v, c), 5);
  });

  it("a flat colour stays that colour through the resize, at any size", async () => {
    const png = await sharp({ create: { width: 517, height: 389, channels: 3, background: { r: 10, g: 128, b: 250 } } }).png().toBuffer();
    const out = await preprocessImage(png);
    for (const i of [0, 5000, PLANE - 1]) {
      expect(out[i]).toBeCloseTo(expected(10, 0), 4);
      expect(out[PLANE + i]).toBeCloseTo(expected(128, 1), 4);
      expect(out[2 * PLANE + i]).toBeCloseTo(expected(250, 2), 4);
    }
  });

  it("resize plan follows torchvision: short side 256, long side rounded down, crop offset rounds half to even", () => {
    expect(resizePlan(768, 576)).toEqual({ width: 341, height: 256, left: 58, top: 16 }); // (341−224)/2 = 58.5 → 58
    expect(resizePlan(300, 400)).toEqual({ width: 256, height: 341, left: 16, top: 58 });
    expect(resizePlan(100, 100)).toEqual({ width: 256, height: 256, left: 16, top: 16 });
  });

  it("reads the JPEG frame size from the header and strips EXIF/XMP/ICC without touching pixels", async () => {
    const jpeg = readFileSync(image("darknet_dog.jpg"));
    const scan = scanJpeg(jpeg);
    expect(scan.size).toEqual({ width: 768, height: 576 });
    const stripped = scan.withoutMetadata();
    expect(stripped.length).toBeLessThan(jpeg.length - 8000); // EXIF + XMP + ICC are ~8.3 KB here
    const [a, b] = await Promise.all([
      sharp(jpeg, { ignoreIcc: true }).raw().toBuffer(),
      sharp(stripped, { ignoreIcc: true }).raw().toBuffer(),
    ]);
    expect(Buffer.compare(a, b)).toBe(0);
    // the native path decodes the bytes as sent: the metadata segments change none of its output either
    const [withMetadata, without] = await Promise.all([preprocessLevels(jpeg), preprocessLevels(stripped)]);
    expect(Buffer.compare(withMetadata, without)).toBe(0);
  });

  it("the fast path stays close to the straight reference pipeline on the sample photos", async () => {
    for (const name of ["darknet_dog.jpg", "pytorchhub_dog.jpg", "imageio_wikkie.png", "skimage_chelsea.png", "skimage_coffee.png"]) {
      const bytes = readFileSync(image(name));
      const [fast, reference] = await Promise.all([preprocessBase64(bytes.toString("base64")), referencePreprocess(bytes)]);
      let sum = 0;
      for (let i = 0; i < fast.length; i++) sum += Math.abs(fast[i] - reference[i]);
      // PNGs take the same sharp path as the reference; JPEGs are decoded at a DCT scale (natively, or by sharp's
      // shrink-on-load for big ones): on average within ~2 of 255 levels (1/255/0.225 ≈ 0.0174 per level)
      if (name.endsWith(".png")) expect(sum).toBe(0);
      else expect(sum / fast.length).toBeLessThan(0.04);
    }
  });
});
