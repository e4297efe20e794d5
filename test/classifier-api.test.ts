import { readFileSync } from "node:fs";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { BadRequestError, type Device } from "../src/api/model-api.js";
import { ImageClassifierAPI, imageClassifier } from "../src/classifier/image-classifier.js";
import { image } from "./helpers/paths.js";

const cpu: Device = { accelerator: "cpu", index: 0, threads: 2, id: "cpu" };
const photos = {
  "darknet_dog.jpg": { catDog: "Dog", imagenet: "malamute" },
  "pytorchhub_dog.jpg": { catDog: "Dog", imagenet: "Samoyed" },
  "imageio_wikkie.png": { catDog: "Cat", imagenet: "tabby" },
  "skimage_chelsea.png": { catDog: "Cat", imagenet: "Egyptian cat" },
  "skimage_coffee.png": { catDog: "Other", imagenet: "espresso" },
};
const base64 = (name: string) => readFileSync(image(name)).toString("base64");

async function classify(api: ImageClassifierAPI, names: string[]) {
  const inputs = await Promise.all(names.map((n) => api.decodeRequest({ image: base64(n) })));
  return api.unbatch(await api.predict(api.batch(inputs))).map((p) => api.encodeResponse(p));
}

describe("ImageClassifierAPI with the real MobileNetV2 and photos", () => {
  const catDog = new ImageClassifierAPI({ precision: "fp32" });
  const imagenet = new ImageClassifierAPI({ labels: "imagenet", precision: "fp32" });
  beforeAll(async () => {
    await catDog.setup(cpu, { workerId: 0, maxBatchSize: 8 });
    await imagenet.setup(cpu, { workerId: 0, maxBatchSize: 8 });
  });

  it("cat-dog mode: dogs → Dog, cats → Cat, coffee → Other, probabilities sorted and summing to 1", async () => {
    const names = Object.keys(photos);
    const responses = await classify(catDog, names);
    responses.forEach((response, i) => {
      const { predictions } = response;
      expect(predictions.map((p) => p.label).sort()).toEqual(["Cat", "Dog", "Other"]);
      expect(predictions[0].label).toBe(photos[names[i] as keyof typeof photos].catDog);
      expect(predictions[0].probability).toBeGreaterThan(0.5);
      expect(predictions[0].probability).toBeGreaterThanOrEqual(predictions[1].probability);
      expect(predictions.reduce((s, p) => s + p.probability, 0)).toBeCloseTo(1, 4);
    });
  });

  it("imagenet mode: top-1 as in SOURCES.md, five sorted class names", async () => {
    const names = Object.keys(photos);
    const responses = await classify(imagenet, names);
    responses.forEach(({ predictions }, i) => {
      expect(predictions).toHaveLength(5);
      expect(predictions[0].label).toBe(photos[names[i] as keyof typeof photos].imagenet);
      for (let k = 1; k < 5; k++) expect(predictions[k - 1].probability).toBeGreaterThanOrEqual(predictions[k].probability);
    });
  });

  it("a batch of five gives the same probabilities as five single-image batches (max abs diff < 1e-5)", async () => {
    const names = Object.keys(photos);
    const inputs = await Promise.all(names.map((n) => imagenet.decodeRequest({ image: base64(n) })));
    const batched = await imagenet.predict(imagenet.batch(inputs));
    let maxDiff = 0;
    for (let i = 0; i < inputs.length; i++) {
      const single = await imagenet.predict(imagenet.batch([inputs[i]]));
      for (let j = 0; j < 1000; j++) maxDiff = Math.max(maxDiff, Math.abs(single[j] - batched[i * 1000 + j]));
    }
    expect(maxDiff).toBeLessThan(1e-5);
  });

  it("accepts a data: URL prefix", async () => {
    const input = await catDog.decodeRequest({ image: `data:image/png;base64,${base64("skimage_coffee.png")}` });
    expect(input.length).toBe(3 * 224 * 224);
  });

  it("info names the model, file, precision, provider, labels mode, input shape and JPEG decoder", () => {
    expect(imagenet.info).toMatchObject({
      model: "mobilenetv2-12",
      precision: "fp32",
      provider: "CPUExecutionProvider",
      labels: "imagenet",
      inputShape: ["N", 3, 224, 224],
    });
    expect(imagenet.info.file).toBe("mobilenetv2-12-fp32.onnx"); // no host path in the public /info
    expect(imagenet.info.jpegDecoder).toMatch(/^(libjpeg-turbo|sharp)/);
  });

  it("the ApiSource points at this module's class", () => {
    const source = imageClassifier({ labels: "imagenet" });
    expect(source.export).toBe("ImageClassifierAPI");
    expect(source.module).toMatch(/image-classifier\.ts$/);
    expect(source.options).toEqual({ labels: "imagenet" });
  });
});

/**
 * A decompression bomb in miniature: a PNG whose header claims width × height pixels, followed by a little
 * compressed data (a real bomb would carry gigabytes of zeros in a few megabytes).
 */
function pngBomb(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type), data])));
    return Buffer.concat([length, Buffer.from(type), data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from("\x89PNG\r\n\x1a\n", "latin1"),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.alloc(10_000))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

describe("bad input gets a BadRequestError with a specific code, decoded or not", () => {
  const api = new ImageClassifierAPI({ maxPixels: 5_000_000 });
  const expectBad = async (request: unknown, code: string, status = 400) => {
    const error = await api.decodeRequest(request as never).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as BadRequestError).code).toBe(code);
    expect((error as BadRequestError).status).toBe(status);
    expect((error as BadRequestError).message.length).toBeGreaterThan(10);
  };

  it("missing, empty, non-string image, non-object body", async () => {
    await expectBad({}, "missing_image");
    await expectBad({ image: null }, "missing_image");
    await expectBad({ image: "" }, "empty_image");
    await expectBad({ image: 42 }, "invalid_image_type");
    await expectBad({ image: ["a"] }, "invalid_image_type");
    await expectBad([], "invalid_body");
    await expectBad(null, "invalid_body");
  });

  it("bad base64", async () => {
    await expectBad({ image: "this is *not* base64!" }, "invalid_base64");
    await expectBad({ image: "data:image/png,abc" }, "invalid_base64");
  });

  it("not an image, and formats that could reference files (SVG) or are not served", async () => {
    await expectBad({ image: Buffer.from("hello world, just text").toString("base64") }, "not_an_image");
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>';
    await expectBad({ image: Buffer.from(svg).toString("base64") }, "unsupported_image_format");
    const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#fff" } }).gif().toBuffer();
    await expectBad({ image: gif.toString("base64") }, "unsupported_image_format");
  });

  it("truncated JPEG and PNG", async () => {
    const jpeg = readFileSync(image("darknet_dog.jpg"));
    await expectBad({ image: jpeg.subarray(0, jpeg.length >> 1).toString("base64") }, "truncated_image");
    const png = readFileSync(image("skimage_coffee.png"));
    await expectBad({ image: png.subarray(0, png.length >> 1).toString("base64") }, "truncated_image");
  });

  it("a truncated JPEG is truncated_image every time, also with decodes running side by side", async () => {
    // libvips shares its error text between concurrent decodes: ~1 in 6 of these once came back as invalid_image
    const cut = readFileSync(image("darknet_dog.jpg")).subarray(0, 80_000).toString("base64");
    for (let round = 0; round < 25; round++) {
      const codes = await Promise.all(Array.from({ length: 4 }, () => api.decodeRequest({ image: cut }).then(() => "decoded", (e) => e.code)));
      expect(codes).toEqual(Array(4).fill("truncated_image"));
    }
  });

  it("corrupt data behind a valid signature", async () => {
    const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(64, 0x41)]);
    const error = await api.decodeRequest({ image: jpeg.toString("base64") }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestError);
    expect(["invalid_image", "truncated_image"]).toContain((error as BadRequestError).code);
  });

  it("decompression bomb: a 60 000 × 60 000 PNG header is refused from the header alone (413)", async () => {
    await expectBad({ image: pngBomb(60_000, 60_000).toString("base64") }, "image_too_large", 413);
    const big = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: "#123" } }).jpeg().toBuffer();
    await expectBad({ image: big.toString("base64") }, "image_too_large", 413);
  });
});
