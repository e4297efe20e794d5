/**
 * `batchwise client predict IMAGE [--url URL]`: the seed's test client. Sends one image to a running classifier as
 * the request body itself (no base64, no JSON) and prints its predictions as percentages.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";

const usage = `Usage: batchwise client predict IMAGE [--url URL]
  IMAGE      a JPEG, PNG or WebP file
  --url URL  the server (default http://127.0.0.1:$PORT, or :8000; a URL with a path is used as the endpoint as it is)`;

export interface ClientPrediction {
  label: string;
  probability: number;
}

/** POST one image file to `url` and return the predictions; throws with the server's error message on a 4xx/5xx. */
export async function predictImage(file: string, url = `http://127.0.0.1:${process.env.PORT ?? 8000}`): Promise<ClientPrediction[]> {
  const image = await readFile(file);
  const endpoint = new URL(url);
  if (endpoint.pathname === "/" || endpoint.pathname === "") endpoint.pathname = "/predict";
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": imageType(image) },
      body: image,
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    throw new Error(`cannot reach ${endpoint.href} (${cause?.code ?? (error as Error).message}); is the server running?`);
  }
  const body = (await response.json().catch(() => undefined)) as
    | { predictions?: ClientPrediction[]; error?: { code?: string; message?: string } }
    | undefined;
  if (!response.ok) {
    throw new Error(`${response.status} ${body?.error?.code ?? response.statusText}: ${body?.error?.message ?? "no error message"}`);
  }
  if (!Array.isArray(body?.predictions)) throw new Error(`${endpoint.href} answered without a "predictions" list`);
  return body.predictions;
}

/** The media type from the file's magic bytes (the server checks them again); unknown bytes go as octet-stream. */
function imageType(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return "image/jpeg";
  if (bytes.subarray(0, 4).toString("latin1") === "\x89PNG") return "image/png";
  if (bytes.subarray(0, 4).toString("latin1") === "RIFF" && bytes.subarray(8, 12).toString("latin1") === "WEBP") return "image/webp";
  return "application/octet-stream";
}

/** One line per prediction: label padded, probability as a percentage with one decimal. */
export function formatPredictions(predictions: ClientPrediction[]): string {
  const width = Math.max(...predictions.map((p) => p.label.length), 5);
  return predictions.map((p) => `${p.label.padEnd(width)}  ${(p.probability * 100).toFixed(1).padStart(5)}%`).join("\n");
}

export async function runClient(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { url: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  const [command, file] = positionals;
  if (values.help || command !== "predict" || !file || positionals.length > 2) {
    console.log(usage);
    if (!values.help) process.exitCode = 2;
    return;
  }
  console.log(formatPredictions(await predictImage(file, values.url)));
}
