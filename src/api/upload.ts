import { Busboy } from "@fastify/busboy";
import { HttpError } from "./errors.js";

/**
 * A binary upload as `decodeRequest` receives it: the bytes of a raw body (`Content-Type: image/jpeg` …) or of the
 * file in a `multipart/form-data` body (what FastAPI/LitServe clients send as `UploadFile`), with no base64 or JSON on
 * the way. An API takes uploads by listing the content types in its `binaryTypes`.
 */
const UPLOAD = Symbol.for("batchwise.upload");

export class Upload {
  /** `instanceof Upload` holds across two copies of batchwise (a user's API importing its own install). */
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[UPLOAD] === true;
  }
  readonly [UPLOAD] = true;

  constructor(
    readonly data: Buffer,
    /** The part's or the body's media type, lowercase, without parameters. */
    readonly contentType: string,
    /** multipart only: the file's name and form field, and the form's text fields. */
    readonly filename?: string,
    readonly field?: string,
    readonly fields: Record<string, string> = {},
  ) {}
}

/** Media type without parameters, lowercase: `Image/JPEG; q=1` → `image/jpeg`. */
export function mediaType(header: string | undefined): string {
  return (header ?? "").split(";")[0].trim().toLowerCase();
}

/**
 * Parse a whole multipart/form-data body (already bounded by the payload limit) into its first file and its text
 * fields. A form without a file is a 400 `missing_file`; a body that is not valid multipart, `invalid_multipart`.
 */
export function parseMultipart(body: Buffer, contentType: string): Promise<Upload> {
  return new Promise((resolve, reject) => {
    let parser: InstanceType<typeof Busboy>;
    try {
      parser = new Busboy({ headers: { "content-type": contentType }, limits: { files: 1, fields: 100, parts: 101 } });
    } catch (error) {
      reject(new HttpError("invalid_multipart", `The multipart/form-data body is malformed: ${(error as Error).message}`));
      return;
    }
    const fields: Record<string, string> = {};
    let file: Promise<Upload> | undefined;
    parser.on("field", (name: string, value: string) => {
      fields[name] = value;
    });
    parser.on("file", (field: string, stream: NodeJS.ReadableStream, filename: string, _encoding: string, type: string) => {
      file = new Promise((done, fail) => {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("error", fail);
        stream.on("end", () => done(new Upload(Buffer.concat(chunks), mediaType(type), filename, field, fields)));
      });
    });
    parser.on("error", (error: Error) =>
      reject(new HttpError("invalid_multipart", `The multipart/form-data body is malformed: ${error.message}`)),
    );
    parser.on("finish", () => {
      if (!file) {
        reject(new HttpError("missing_file", "The multipart/form-data body has no file: send the file in a form field"));
        return;
      }
      file.then(resolve, reject);
    });
    parser.end(body);
  });
}
