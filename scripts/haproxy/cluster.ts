/**
 * A loopback "cluster" for the scale-out check and benchmark: classifier replicas as child processes (the CLI, as a
 * user runs it), and a real HAProxy in front of them that health-checks GET /readyz. Everything binds 127.0.0.1, and
 * every wait is bounded.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export const HOST = "127.0.0.1";

/**
 * HAProxy's buffer size. It can only retry a request it still holds whole, so every request body must fit, with
 * room for the headers: the largest sample photo is 661 kB, 882 kB as base64 JSON.
 */
export const HAPROXY_BUFSIZE = 1024 * 1024;

/** Throws unless HAProxy can hold (and so retry) every one of these bodies. */
export function checkBodiesFitBuffer(bodies: { body: Buffer }[]) {
  const largest = Math.max(...bodies.map((b) => b.body.length));
  if (largest > HAPROXY_BUFSIZE - 16 * 1024) throw new Error(`a ${largest}-byte body does not fit HAProxy's ${HAPROXY_BUFSIZE}-byte buffer: it could not be retried`);
}

/**
 * How to send photos to this server: raw image bodies when its /predict endpoint lists image/jpeg among its binary
 * types (fewer bytes, no base64), else `{"image": "<base64>"}` JSON.
 */
export async function bodyFormOf(url: string): Promise<"binary" | "json"> {
  const info = (await (await fetch(`${url}/info`)).json()) as { endpoints?: { path: string; binaryTypes?: string[] }[] };
  const predict = info.endpoints?.find((e) => e.path === "/predict");
  return predict?.binaryTypes?.includes("image/jpeg") ? "binary" : "json";
}

/** A port the kernel says is free now (bound to 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `check` every `everyMs` until it returns true; throws `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface ReplicaOptions {
  /** Extra `serve classifier` flags, e.g. ["--max-batch-size", "16"]. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

/** One classifier replica: `tsx src/cli.ts serve classifier --port P --workers 1 …` in a child process. */
export class Replica {
  child?: ChildProcess;
  exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log = "";

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly options: ReplicaOptions = {},
  ) {}

  get url() {
    return `http://${HOST}:${this.port}`;
  }

  /** Start it and wait (bounded) until GET /readyz answers 200. */
  async start(timeoutMs = 120_000): Promise<void> {
    const args = ["--import", "tsx", "src/cli.ts", "serve", "classifier", "--host", HOST, "--port", String(this.port)];
    // One single-threaded worker per replica: three replicas then run three inference threads on this machine's two
    // cores, the closest a 2-core box gets to "one replica per node".
    args.push("--workers", "1", "--threads-per-worker", "1", ...(this.options.args ?? []));
    this.log = "";
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...this.options.env } });
    this.child = child;
    const keep = (chunk: string) => {
      this.log = (this.log + chunk).slice(-4000);
    };
    child.stdout!.setEncoding("utf8").on("data", keep);
    child.stderr!.setEncoding("utf8").on("data", keep);
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    let gone: string | undefined;
    void this.exited.then(({ code, signal }) => (gone = `${this.name} exited (${signal ?? `code ${code}`}) during startup: ${this.log.slice(-1500)}`));
    await waitFor(
      `${this.name} on port ${this.port} to turn ready`,
      async () => {
        if (gone) throw new Error(gone);
        return (await fetch(`${this.url}/readyz`)).status === 200;
      },
      timeoutMs,
      200,
    ).catch((error) => {
      child.kill("SIGKILL");
      throw gone ? new Error(gone) : error;
    });
  }

  /** Send `signal` and wait (bounded) for the process to exit; SIGKILL if it outlives `timeoutMs`. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null };
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const result = await this.exited!;
    clearTimeout(timer);
    return result;
  }
}

export interface HaproxyServer {
  name: string;
  port: number;
}

/**
 * HAProxy's configuration for replicas behind one frontend.
 *
 * - `option httpchk GET /readyz` every second (`inter 1s`): a draining replica answers 503 and is out of rotation
 *   after `fall 2` checks (the second one `fastinter 500ms` later: ≈ 1.5 s, inside batchwise's default 5 s drain);
 *   a new one is in after `rise 2`. `timeout check 5s`: a replica busy with a full queue answers its probe late, and
 *   a short timeout would take healthy replicas out of rotation exactly when they are all needed.
 * - `retry-on conn-failure empty-response response-timeout 503` + `option redispatch 1`: a request whose replica
 *   refused the connection, closed it without an answer (killed mid-request), or answered 503 (draining past its
 *   drain period, queue full: nothing was run) is sent again to another replica. Retrying a POST that may already
 *   have run is only safe because the classifier's predict is idempotent (its endpoint says so in /info). HAProxy
 *   can only retry a request it still holds: `option http-buffer-request` waits for the whole body, and
 *   `tune.bufsize` must be larger than the largest body.
 */
export function haproxyConfig(options: { frontPort: number; statsPort: number; servers: HaproxyServer[]; balance?: string }): string {
  const servers = options.servers.map((s) => `  server ${s.name} ${HOST}:${s.port} check`).join("\n");
  return `global
  maxconn 256
  tune.bufsize ${HAPROXY_BUFSIZE}

defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout check 5s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout 503
  option http-buffer-request

frontend predict
  bind ${HOST}:${options.frontPort}
  default_backend replicas

backend replicas
  balance ${options.balance ?? "leastconn"}
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 1s fastinter 500ms fall 2 rise 2
${servers}

frontend stats
  bind ${HOST}:${options.statsPort}
  stats enable
  stats uri /stats
  stats refresh 0
`;
}

/** $HAPROXY, else Debian's /usr/sbin/haproxy (not on a regular user's PATH there), else whatever PATH finds. */
function haproxyBinary(): string {
  if (process.env.HAPROXY) return process.env.HAPROXY;
  return existsSync("/usr/sbin/haproxy") ? "/usr/sbin/haproxy" : "haproxy";
}

/** One row of HAProxy's CSV statistics (the columns used here). */
export interface ServerStats {
  name: string;
  /** UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT, no check… */
  status: string;
  /** Requests in flight on it now. */
  current: number;
  /** Sessions (requests, with one request per session slot) sent to it so far. */
  total: number;
  responses2xx: number;
  responses5xx: number;
  /** Requests HAProxy sent again (to it or elsewhere) after a failure on it. */
  retries: number;
  redispatches: number;
  /** UP → DOWN transitions so far (a restart is one; more mean its health checks failed while it served). */
  downs: number;
}

/** A running HAProxy. */
export class Haproxy {
  private constructor(
    readonly child: ChildProcess,
    readonly frontPort: number,
    readonly statsPort: number,
    private readonly exited: Promise<unknown>,
  ) {}

  get url() {
    return `http://${HOST}:${this.frontPort}`;
  }

  /** Validate the configuration (`haproxy -c`), start it in the foreground, wait until its stats page answers. */
  static async start(servers: HaproxyServer[], options: { balance?: string } = {}): Promise<Haproxy> {
    const [frontPort, statsPort] = [await freePort(), await freePort()];
    const dir = mkdtempSync(path.join(tmpdir(), "batchwise-haproxy-"));
    const file = path.join(dir, "haproxy.cfg");
    writeFileSync(file, haproxyConfig({ frontPort, statsPort, servers, ...options }));
    const binary = haproxyBinary();
    const check = spawnSync(binary, ["-c", "-q", "-f", file], { encoding: "utf8" });
    if (check.error) throw new Error(`cannot run ${binary} (Debian: bash scripts/apt-install.sh haproxy): ${check.error.message}`);
    if (check.status !== 0) throw new Error(`haproxy rejected its configuration:\n${check.stdout}${check.stderr}`);
    const child = spawn(binary, ["-db", "-q", "-f", file], { stdio: ["ignore", "ignore", "inherit"] });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const proxy = new Haproxy(child, frontPort, statsPort, exited);
    await waitFor("haproxy's stats page", async () => (await fetch(`http://${HOST}:${statsPort}/stats;csv`)).ok, 10_000);
    return proxy;
  }

  /** Per-replica statistics from the `replicas` backend. */
  async stats(): Promise<ServerStats[]> {
    const csv = await (await fetch(`http://${HOST}:${this.statsPort}/stats;csv`)).text();
    const [header, ...rows] = csv.trim().split("\n");
    const columns = header.replace(/^# /, "").split(",");
    const at = (cells: string[], name: string) => cells[columns.indexOf(name)] ?? "";
    const num = (cells: string[], name: string) => Number(at(cells, name)) || 0;
    return rows
      .map((row) => row.split(","))
      .filter((cells) => at(cells, "pxname") === "replicas" && !["FRONTEND", "BACKEND"].includes(at(cells, "svname")))
      .map((cells) => ({
        name: at(cells, "svname"),
        status: at(cells, "status"),
        current: num(cells, "scur"),
        total: num(cells, "stot"),
        responses2xx: num(cells, "hrsp_2xx"),
        responses5xx: num(cells, "hrsp_5xx"),
        retries: num(cells, "wretr"),
        redispatches: num(cells, "wredis"),
        downs: num(cells, "chkdown"),
      }));
  }

  /** Wait (bounded) until HAProxy reports `server`'s status as exactly `status` ("UP" or "DOWN"). */
  async waitStatus(server: string, status: "UP" | "DOWN", timeoutMs = 30_000) {
    await waitFor(
      `haproxy to mark ${server} ${status}`,
      async () => (await this.stats()).find((s) => s.name === server)?.status === status,
      timeoutMs,
    );
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
