import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { formatPredictions, predictImage } from "../src/cli/client.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { image } from "./helpers/paths.js";

let server: BatchwiseServer;
let url: string;

beforeAll(async () => {
  server = await createServer({
    api: imageClassifier({ labels: "cat-dog", precision: "int8" }),
    maxBatchSize: 8,
    batchTimeout: 0.005,
    workersPerDevice: 1,
    accelerator: "cpu",
    port: 0,
    log: false,
  });
  url = await server.listen();
});
afterAll(() => server?.close());

const post = (body: unknown) =>
  fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("the classifier served over HTTP (worker thread, batching on)", () => {
  it("classifies all five photos sent at once", async () => {
    const expected: Record<string, string> = {
      "darknet_dog.jpg": "Dog",
      "pytorchhub_dog.jpg": "Dog",
      "imageio_wikkie.png": "Cat",
      "skimage_chelsea.png": "Cat",
      "skimage_coffee.png": "Other",
    };
    const results = await Promise.all(
      Object.keys(expected).map(async (name) => {
        const response = await post({ image: readFileSync(image(name)).toString("base64") });
        expect(response.status).toBe(200);
        return [name, ((await response.json()) as { predictions: { label: string }[] }).predictions[0].label];
      }),
    );
    expect(Object.fromEntries(results)).toEqual(expected);
  });

  it("bad input is a 400/413 with {error: {code, message}}, and the server keeps serving", async () => {
    const cases: [unknown, number, string][] = [
      [{}, 400, "invalid_body"],
      [{ image: "!!!" }, 400, "invalid_base64"],
      [{ image: Buffer.from("<svg></svg>").toString("base64") }, 400, "unsupported_image_format"],
      [{ image: readFileSync(image("darknet_dog.jpg")).subarray(0, 5000).toString("base64") }, 400, "truncated_image"],
    ];
    for (const [body, status, code] of cases) {
      const response = await post(body);
      expect(response.status).toBe(status);
      const json = (await response.json()) as { error: { code: string; message: string } };
      expect(json.error.code).toBe(code);
      expect(json.error.message).toBeTruthy();
    }
    expect((await post({ image: readFileSync(image("skimage_coffee.png")).toString("base64") })).status).toBe(200);
  });

  it("/info shows the model, precision and provider from the worker's setup", async () => {
    const info = JSON.stringify(await (await fetch(`${url}/info`)).json());
    expect(info).toContain("mobilenetv2-12");
    expect(info).toContain('"precision":"int8"');
    expect(info).toContain("CPUExecutionProvider");
  });

  it("the CLI client prints the top predictions as percentages", async () => {
    const predictions = await predictImage(image("darknet_dog.jpg"), url);
    expect(predictions[0].label).toBe("Dog");
    const text = formatPredictions(predictions);
    expect(text.split("\n")[0]).toMatch(/^Dog\s+\d{1,3}\.\d%$/);
    await expect(predictImage(image("darknet_dog.jpg"), "http://127.0.0.1:9/")).rejects.toThrow(/cannot reach/);
  });
});
