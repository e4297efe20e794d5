/**
 * Endpoints as Model Context Protocol tools on `/mcp` (streamable HTTP transport, the official
 * `@modelcontextprotocol/sdk`). An endpoint with the option `mcp: { name, description }` is one tool; its input schema
 * is the API's `requestSchema` where it declares one (`{type: "object"}` otherwise), and a call runs the same path as
 * an HTTP POST — spec.parseRequest → decodeRequest → batcher → worker → encodeResponse — so it is batched with HTTP
 * traffic, counted in the endpoint's load, and behind the server's API key (the auth hook covers every route but the
 * probes). The answer is the JSON body as text and as `structuredContent`; a refused call is a tool error
 * (`isError: true`) carrying the same error body HTTP would send.
 *
 * Stateless: each POST gets a fresh protocol server and transport, answered as JSON (no session to keep, nothing to
 * clean up, any replica behind a load balancer can take the next call). The SDK is imported only when a tool exists.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Cancellation, requestContext } from "./cancellation.js";
import type { Endpoint } from "./endpoint.js";
import { clean, toHttpError } from "../api/errors.js";
import { OptionError } from "./options.js";
import type { SpecResponse } from "../api/spec.js";

export const MCP_PATH = "/mcp";
/** The version this server reports in the MCP handshake: its tool interface, not the package. */
const MCP_SERVER_VERSION = "1";

/** Register `/mcp` when at least one endpoint has the `mcp` option. */
export async function registerMcpRoute(app: FastifyInstance, endpoints: Endpoint[]): Promise<void> {
  const named = endpoints.filter((e) => e.config.mcp);
  const tools = new Map(named.map((e) => [e.config.mcp!.name, e]));
  if (tools.size !== named.length) throw new OptionError(`Two endpoints share an MCP tool name: ${named.map((e) => e.config.mcp!.name).join(", ")}`);
  if (tools.size === 0) return;
  const [{ Server }, { StreamableHTTPServerTransport }, { CallToolRequestSchema, ListToolsRequestSchema, ErrorCode, McpError }] = await Promise.all([
    import("@modelcontextprotocol/sdk/server/index.js"),
    import("@modelcontextprotocol/sdk/server/streamableHttp.js"),
    import("@modelcontextprotocol/sdk/types.js"),
  ]);
  const listed = [...tools].map(([name, endpoint]) => ({
    name,
    description: endpoint.config.mcp!.description ?? `POST ${endpoint.config.path}`,
    inputSchema: inputSchema(endpoint) as { type: "object"; [key: string]: unknown },
  }));

  async function handle(request: FastifyRequest, reply: FastifyReply) {
    const server = new Server({ name: "batchwise", version: MCP_SERVER_VERSION }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: listed }));
    server.setRequestHandler(CallToolRequestSchema, async (call, extra) => {
      const endpoint = tools.get(call.params.name);
      if (!endpoint) throw new McpError(ErrorCode.InvalidParams, `Unknown tool "${call.params.name}"; tools: ${[...tools.keys()].join(", ")}`);
      return callTool(endpoint, call.params.arguments ?? {}, request.headers, extra.signal);
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    reply.hijack();
    reply.raw.once("close", () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(request.raw, reply.raw, request.body);
    } catch (error) {
      // The reply is hijacked: fastify's error handler cannot answer any more, so a failure is answered here.
      const res = reply.raw;
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32603, message: `Internal error: ${clean((error as Error)?.message ?? String(error))}` }, id: null }));
    }
  }
  app.post(MCP_PATH, handle);
  // Stateless: no server-initiated stream to open (GET) and no session to end (DELETE). A GET stream would be held
  // open by a transport nothing ever writes to; the SDK's client takes 405 as "no stream" and goes on.
  const notAllowed = (_request: FastifyRequest, reply: FastifyReply) =>
    reply.code(405).header("allow", "POST").send({ jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed: this MCP server is stateless; POST /mcp" }, id: null });
  app.get(MCP_PATH, notAllowed);
  app.delete(MCP_PATH, notAllowed);
}

/** The tool's input schema: the endpoint's own, the API's requestSchema, or any object. */
function inputSchema(endpoint: Endpoint): object {
  const declared = endpoint.config.mcp!.inputSchema ?? (endpoint.api as { requestSchema?: object }).requestSchema;
  return declared && typeof declared === "object" ? { type: "object", ...declared } : { type: "object" };
}

/** One tool call down the HTTP path; errors come back in the endpoint's error format, as a tool error. */
async function callTool(endpoint: Endpoint, args: Record<string, unknown>, headers: FastifyRequest["headers"], signal: AbortSignal) {
  const finished = endpoint.track();
  const cancellation = new Cancellation();
  const onAbort = () => cancellation.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const body = await bodyOf(await endpoint.handle(args, requestContext(cancellation, headers), cancellation));
    const structured = body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
    return {
      content: [{ type: "text" as const, text: typeof body === "string" ? body : JSON.stringify(body) }],
      ...(structured ? { structuredContent: structured } : {}),
    };
  } catch (error) {
    return { isError: true, content: [{ type: "text" as const, text: JSON.stringify(endpoint.spec.formatError(toHttpError(error))) }] };
  } finally {
    signal.removeEventListener("abort", onAbort);
    finished();
  }
}

/** A JSON response's body, or a stream's chunks joined (a tool answers once). */
async function bodyOf(response: SpecResponse): Promise<unknown> {
  if (response.kind === "json") return response.body;
  let text = "";
  for await (const chunk of response.body) text += chunk;
  return text;
}
