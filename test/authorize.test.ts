import { beforeAll, describe, expect, it } from "vitest";
import { ModelAPI, type AuthorizeRequest } from "../src/api/model-api.js";
import { HttpError } from "../src/api/errors.js";
import { tokenStreamApi } from "../src/bench/runs/stream-overhead.js";
import { openAISpec } from "../src/openai/spec.js";
import { serversClosedAfterAll } from "./helpers/servers.js";

// authorize(request) per endpoint: on the API or as an endpoint option; sees method, path and headers before the body
// is read; false → 401, HttpError("forbidden") → 403; the server's apiKey still applies first; probes stay open.

class Echo extends ModelAPI<{ x: number }, number, number, { x: number }> {
  seen: AuthorizeRequest[] = [];
  decoded = 0;
  override authorize(request: AuthorizeRequest) {
    this.seen.push(request);
    const token = request.headers["x-team"];
    if (token === "blocked") throw new HttpError("forbidden", "Team blocked is not allowed here");
    if (token === "buggy") throw new Error("rule crashed at /srv/secret/rules.ts");
    return token === "vision";
  }
  override decodeRequest(request: { x: number }) {
    this.decoded++;
    return request.x;
  }
  predict(batch: number[]) {
    return batch;
  }
  override encodeResponse(x: number) {
    return { x };
  }
}

/** The same API with no rule of its own: its endpoint is open. */
class Open extends Echo {
  constructor() {
    super();
    (this as { authorize?: unknown }).authorize = undefined;
  }
}

const start = serversClosedAfterAll();

const post = (url: string, path: string, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}?q=1`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: '{"x": 7}' });
const code = async (response: Response) => ((await response.json()) as { error: { code: string; message: string } }).error;

describe("authorize on the API and as an endpoint option", () => {
  const api = new Echo();
  const optionCalls: string[] = [];
  let url: string;
  beforeAll(async () => {
    url = await start({
      endpoints: [
        { api, path: "/vision", workersPerDevice: 0 },
        {
          api: new Echo(),
          path: "/admin",
          workersPerDevice: 0,
          // the option replaces the API's own rule
          authorize: async ({ method, headers }) => {
            optionCalls.push(method);
            return headers.authorization === "Bearer admin";
          },
        },
        { api: new Open(), path: "/open", workersPerDevice: 0 },
      ],
    });
  });

  it("lets an allowed request through and shows the rule method, path (no query) and headers", async () => {
    const response = await post(url, "/vision", { "x-team": "vision" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ x: 7 });
    const seen = api.seen.at(-1)!;
    expect(seen.method).toBe("POST");
    expect(seen.path).toBe("/vision");
    expect(seen.headers["x-team"]).toBe("vision");
    expect(seen.ip).toBe("127.0.0.1");
  });

  it("false is a 401 before the body is decoded", async () => {
    const before = api.decoded;
    const response = await post(url, "/vision", { "x-team": "other" });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe("Bearer");
    expect((await code(response)).code).toBe("unauthorized");
    expect(api.decoded).toBe(before);
  });

  it("HttpError('forbidden') is a 403 with its message; a crashing rule is a 500 that leaks nothing", async () => {
    const forbidden = await post(url, "/vision", { "x-team": "blocked" });
    expect(forbidden.status).toBe(403);
    expect(await code(forbidden)).toEqual({ code: "forbidden", message: "Team blocked is not allowed here" });
    const buggy = await post(url, "/vision", { "x-team": "buggy" });
    expect(buggy.status).toBe(500);
    const error = await code(buggy);
    expect(error.code).toBe("internal_error");
    expect(error.message).not.toContain("/srv");
  });

  it("the endpoint option replaces the API's method; an endpoint without a rule is open", async () => {
    expect((await post(url, "/admin", { "x-team": "vision" })).status).toBe(401);
    expect((await post(url, "/admin", { authorization: "Bearer admin" })).status).toBe(200);
    expect(optionCalls).toEqual(["POST", "POST"]);
    expect((await post(url, "/open")).status).toBe(200);
  });

  it("probes, /info and / are not behind an endpoint's rule", async () => {
    for (const path of ["/health", "/livez", "/readyz", "/info", "/"]) expect((await fetch(`${url}${path}`)).status, path).toBe(200);
  });
});

describe("authorize with the server's apiKey", () => {
  it("the key is checked first, then the rule; probes stay open", async () => {
    const api = new Echo();
    const url = await start({ api, workersPerDevice: 0, apiKey: "s3cret" });
    expect((await post(url, "/predict", { "x-team": "vision" })).status).toBe(401);
    expect(api.seen).toHaveLength(0); // refused by the key: the rule never ran
    expect((await post(url, "/predict", { "x-api-key": "s3cret", "x-team": "other" })).status).toBe(401);
    expect((await post(url, "/predict", { "x-api-key": "s3cret", "x-team": "vision" })).status).toBe(200);
    for (const path of ["/health", "/livez", "/readyz"]) expect((await fetch(`${url}${path}`)).status, path).toBe(200);
  });
});

describe("authorize on an OpenAI endpoint", () => {
  it("covers the spec's own routes too (GET /v1/models)", async () => {
    const url = await start({
      api: tokenStreamApi(),
      spec: openAISpec(),
      workersPerDevice: 1,
      authorize: ({ headers }) => headers.authorization === "Bearer sk-team",
    });
    const refused = await fetch(`${url}/v1/models`);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const models = await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer sk-team" } });
    expect(models.status).toBe(200);
    const chat = (auth?: string) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(auth ? { authorization: auth } : {}) },
        body: JSON.stringify({ model: "token-stream", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
      });
    expect((await chat()).status).toBe(401);
    expect((await chat("Bearer sk-team")).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });
});
