/**
 * A chat message's `content` as a list of parts: text parts are joined into the message's text; image and audio parts
 * reach the API only when it declares them (`openai: { accepts: ["image_url", "input_audio"] }`), decoded from their
 * data URL or base64 into bytes + media type (the shape of an `Upload`), so an API never parses base64 itself.
 *
 * An http(s) image URL would make the server fetch from wherever a client points it (SSRF, unbounded downloads): it is
 * refused unless the API declares `"image_url.remote"`, and then it is passed on as the URL, for the API to fetch.
 * For an API that declares none of these (the chat app), any non-text part is a 400 naming it, as before.
 */
import type { MediaPart } from "../chat/types.js";
import { Upload } from "../api/upload.js";
import { InvalidRequestError, isObject } from "./errors.js";

/** What a content list becomes: its text parts joined, and its other parts in order. */
export interface ParsedContent {
  text: string;
  parts: MediaPart[];
}

/** Audio formats OpenAI's `input_audio.format` names, and their media types. */
const AUDIO_TYPES: Record<string, string> = { wav: "audio/wav", mp3: "audio/mpeg", flac: "audio/flac", ogg: "audio/ogg", webm: "audio/webm", m4a: "audio/mp4" };

export function parseContentParts(content: unknown[], param: string, accepts: ReadonlySet<string>): ParsedContent {
  const texts: string[] = [];
  const parts: MediaPart[] = [];
  content.forEach((part, i) => {
    const at = `${param}[${i}]`;
    if (!isObject(part)) throw new InvalidRequestError(`'${at}' must be a content part object`, at);
    if (part.type === "text") {
      if (typeof part.text !== "string") throw new InvalidRequestError(`'${at}.text' must be a string`, `${at}.text`);
      texts.push(part.text);
      return;
    }
    if ((part.type === "image_url" || part.type === "input_audio") && !accepts.has(part.type)) {
      throw new InvalidRequestError(
        `'${at}' is a ${part.type} part; this API takes text only (an API declares other parts with openai.accepts)`,
        at,
      );
    }
    if (part.type === "image_url") parts.push(imagePart(part.image_url, `${at}.image_url`, accepts));
    else if (part.type === "input_audio") parts.push(audioPart(part.input_audio, `${at}.input_audio`));
    else throw new InvalidRequestError(`'${at}.type' must be text, image_url or input_audio (got ${JSON.stringify(part.type)})`, `${at}.type`);
  });
  return { text: texts.join(""), parts };
}

function imagePart(value: unknown, param: string, accepts: ReadonlySet<string>): MediaPart {
  if (!isObject(value) || typeof value.url !== "string") throw new InvalidRequestError(`'${param}' must be an object with a 'url' string`, param);
  const detail = value.detail;
  if (detail !== undefined && detail !== "auto" && detail !== "low" && detail !== "high") {
    throw new InvalidRequestError(`'${param}.detail' must be auto, low or high`, `${param}.detail`);
  }
  const extra = detail === undefined ? {} : { detail };
  if (/^https?:\/\//i.test(value.url)) {
    if (!accepts.has("image_url.remote")) {
      throw new InvalidRequestError(
        `'${param}.url' is an http(s) URL; this API takes images as data URLs only (data:image/png;base64,…)`,
        `${param}.url`,
        "unsupported_parameter",
      );
    }
    return { type: "image_url", url: value.url, ...extra };
  }
  const match = /^data:([\w.+-]+\/[\w.+-]+)(?:;[^,;]*)*;base64,/i.exec(value.url);
  if (!match) throw new InvalidRequestError(`'${param}.url' must be a base64 data URL (data:image/png;base64,…) or an http(s) URL`, `${param}.url`);
  const data = strictBase64(value.url.slice(match[0].length), `${param}.url`);
  return { type: "image_url", upload: new Upload(data, match[1].toLowerCase()), ...extra };
}

function audioPart(value: unknown, param: string): MediaPart {
  if (!isObject(value) || typeof value.data !== "string" || typeof value.format !== "string") {
    throw new InvalidRequestError(`'${param}' must be an object with 'data' (base64) and 'format' strings`, param);
  }
  const contentType = AUDIO_TYPES[value.format];
  if (!contentType) throw new InvalidRequestError(`'${param}.format' must be one of ${Object.keys(AUDIO_TYPES).join(", ")}`, `${param}.format`);
  return { type: "input_audio", upload: new Upload(strictBase64(value.data, `${param}.data`), contentType), format: value.format };
}

/** Base64 (standard alphabet, padding optional) to bytes; anything else, or nothing, is a 400 naming the field. */
function strictBase64(text: string, param: string): Buffer {
  if (text.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new InvalidRequestError(`'${param}' is not valid base64`, param);
  return Buffer.from(text, "base64");
}
