/**
 * deploy/ (the kustomize base and the prometheus-adapter rule): every manifest is valid against the Kubernetes API
 * schemas (kubernetes-models' validators, generated from Kubernetes' OpenAPI), the pieces agree with each other
 * (selectors, ports, the HPA's target and metric, the shutdown budget), and a real classifier started with the
 * Deployment's own environment answers the probe paths and exports the HPA's metric.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { OPTIONS } from "../src/server/options.js";
import { modelsDir } from "./helpers/paths.js";

const deployDir = path.resolve("deploy");

// apiVersion/kind → the model whose validate() checks it against the API schema
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "v1/ConfigMap": ConfigMap,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
};

interface Manifest {
  file: string;
  doc: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) return name === "models" ? [] : yamlFiles(file);
    return /\.ya?ml$/.test(name) ? [file] : [];
  });
}

function parseFile(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const doc of docs) if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
  return docs.map((doc) => doc.toJS()).filter((doc) => doc != null);
}

const files = yamlFiles(deployDir);
const kustomizations = files.filter((f) => path.basename(f) === "kustomization.yaml");
const manifests: Manifest[] = files
  .filter((f) => !kustomizations.includes(f))
  .flatMap((file) => parseFile(file).map((doc) => ({ file: path.relative(deployDir, file), doc })));
const one = (kind: string) => {
  const found = manifests.filter((m) => m.doc.kind === kind);
  expect(found, `exactly one ${kind} in deploy/`).toHaveLength(1);
  return found[0].doc;
};

describe("deploy/ manifests", () => {
  it("has the base's objects and the adapter rule", () => {
    expect(manifests.map((m) => m.doc.kind).sort()).toEqual(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]);
  });

  it.each(manifests.map((m) => [`${m.file}: ${m.doc.kind}`, m] as const))("%s is valid against the Kubernetes API schema", (_name, m) => {
    const Model = MODELS[`${m.doc.apiVersion}/${m.doc.kind}`];
    expect(Model, `no schema for ${m.doc.apiVersion} ${m.doc.kind}`).toBeDefined();
    expect(() => new Model(m.doc as never).validate()).not.toThrow();
  });

  it("the validators reject what the API server would (so the checks above can fail)", () => {
    const deployment = structuredClone(one("Deployment"));
    deployment.spec.template.spec.containers[0].ports[0].containerPort = "8000";
    expect(() => new Deployment(deployment).validate()).toThrow(/containerPort must be integer/);
    const hpa = structuredClone(one("HorizontalPodAutoscaler"));
    hpa.spec.metrics[0].pods.target.averageValue = "thirty-two";
    expect(() => new HorizontalPodAutoscaler(hpa).validate()).toThrow(/quantity/);
    const pdb = structuredClone(one("PodDisruptionBudget"));
    delete pdb.spec.selector.matchLabels;
    pdb.spec.selector.matchExpressions = [{ key: "app" }];
    expect(() => new PodDisruptionBudget(pdb).validate()).toThrow(/operator/);
  });

  it("every kustomization lists exactly the manifests beside it", () => {
    expect(kustomizations.map((f) => path.relative(deployDir, f)).sort()).toEqual(["kustomization.yaml", "prometheus-adapter/kustomization.yaml"]);
    for (const file of kustomizations) {
      const k = parse(readFileSync(file, "utf8"));
      expect(k.apiVersion).toBe("kustomize.config.k8s.io/v1beta1");
      expect(k.kind).toBe("Kustomization");
      const dir = path.dirname(file);
      const beside = readdirSync(dir).filter((n) => /\.ya?ml$/.test(n) && n !== "kustomization.yaml");
      expect([...k.resources].sort(), file).toEqual(beside.sort());
    }
  });

  it("the Service, PodDisruptionBudget and HPA point at the Deployment and its pods", () => {
    const deployment = one("Deployment");
    const podLabels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual(podLabels);
    expect(deployment.spec.replicas, "the HPA owns replicas").toBeUndefined();
    const container = deployment.spec.template.spec.containers[0];
    const portNames = container.ports.map((p: { name: string }) => p.name);
    const service = one("Service");
    expect(service.spec.selector).toEqual(podLabels);
    for (const port of service.spec.ports) expect(portNames).toContain(port.targetPort);
    expect(one("PodDisruptionBudget").spec.selector.matchLabels).toEqual(podLabels);
    const hpa = one("HorizontalPodAutoscaler");
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2); // one pod may drain while another serves
    expect(hpa.spec.metrics.map((m: { type: string }) => m.type)).toEqual(["Pods", "Resource"]);
    expect(hpa.spec.metrics[1].resource.name).toBe("cpu");
  });

  it("the container's environment sets only options the server declares, and its port is the one it listens on", () => {
    const container = one("Deployment").spec.template.spec.containers[0];
    const env = envOf(container);
    const declared = new Set(OPTIONS.flatMap((o) => o.env ?? []));
    for (const name of Object.keys(env)) if (name !== "BATCHWISE_MODELS_DIR") expect(declared, `${name} is no option's environment variable`).toContain(name);
    expect(Number(env.PORT)).toBe(container.ports[0].containerPort);
    expect(env.BATCHWISE_HOST).toBe("0.0.0.0"); // reachable from outside the pod
    const annotations = one("Deployment").spec.template.metadata.annotations;
    expect(Number(annotations["prometheus.io/port"])).toBe(container.ports[0].containerPort);
    expect(annotations["prometheus.io/path"]).toBe("/metrics");
    for (const probe of [container.readinessProbe, container.livenessProbe]) expect(container.ports.map((p: { name: string }) => p.name)).toContain(probe.httpGet.port);
  });

  it("the CPU request is the worker × thread budget, and the grace period covers preStop + drain + queue wait", () => {
    const spec = one("Deployment").spec.template.spec;
    const container = spec.containers[0];
    const env = envOf(container);
    const workers = Number(env[envName("workersPerDevice")]);
    const threads = Number(env[envName("threadsPerWorker")]);
    expect(workers * threads).toBeGreaterThan(0);
    expect(cpuCores(container.resources.requests.cpu)).toBe(workers * threads);
    const [sleepCommand, seconds] = container.lifecycle.preStop.exec.command;
    expect(sleepCommand).toBe("sleep");
    const drain = Number(env[envName("drainPeriod")]);
    const queueWait = Number(env[envName("queueTimeout")]);
    expect(drain).toBeGreaterThan(0);
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Number(seconds) + drain + queueWait);
  });

  it("the prometheus-adapter rule serves the metric the HPA asks for, from the series the server exports", () => {
    const hpaMetric = one("HorizontalPodAutoscaler").spec.metrics[0].pods.metric.name;
    const config = parse(one("ConfigMap").data["config.yaml"]);
    const rule = config.rules.find((r: { name: { as: string } }) => r.name.as === hpaMetric);
    expect(rule, `an adapter rule named ${hpaMetric}`).toBeDefined();
    expect(rule.seriesQuery).toMatch(/^batchwise_queue_depth\{/);
    expect(rule.resources.overrides.pod.resource).toBe("pod");
  });

  it.skipIf(!hasKubectl())("kustomize renders the base into the same objects (kubectl kustomize)", () => {
    const rendered = spawnSync("kubectl", ["kustomize", deployDir], { encoding: "utf8" });
    expect(rendered.status, rendered.stderr).toBe(0);
    const docs = parseAllDocuments(rendered.stdout).map((d) => d.toJS());
    expect(docs.map((d) => d.kind).sort()).toEqual(["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]);
    for (const doc of docs) expect(() => new MODELS[`${doc.apiVersion}/${doc.kind}`](doc as never).validate()).not.toThrow();
  });
});

describe("Dockerfile (not buildable here: no Docker engine)", () => {
  const dockerfile = readFileSync("Dockerfile", "utf8").replace(/\\\n/g, " ");
  const ignored = readFileSync(".dockerignore", "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  // .dockerignore's rules for plain paths and "dir/*": the last matching rule wins, "!" re-includes
  const excluded = (file: string) =>
    ignored.reduce((out, rule) => {
      const negate = rule.startsWith("!");
      const pattern = negate ? rule.slice(1) : rule;
      const matches = pattern.endsWith("/*")
        ? file.startsWith(pattern.slice(0, -1)) && file.length > pattern.length - 1
        : pattern.startsWith("*.") ? file.endsWith(pattern.slice(1)) : file === pattern || file.startsWith(`${pattern}/`);
      return matches ? !negate : out;
    }, false);
  const contextCopies = [...dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));

  it("copies only files that exist and that .dockerignore lets into the build context", () => {
    expect(contextCopies.length).toBeGreaterThan(5);
    const args = Object.fromEntries([...dockerfile.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
    for (const source of contextCopies) {
      const file = source.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name]);
      expect(statSync(file, { throwIfNoEntry: false }), `${file} exists`).toBeDefined();
      expect(excluded(file), `${file} is in the build context`).toBe(false);
    }
    expect(excluded("node_modules")).toBe(true); // the rules above are read as Docker reads them
  });

  it("runs what npm start runs, after an install whose postinstall scripts it copied", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8"));
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]) as string[];
    expect(cmd).toEqual(["node", "dist/cli.js", "serve", "classifier"]);
    // npm start compiles src/ when it changed, sets glibc's arena count and sizes libuv's pool to the cores in its
    // command line; the image compiles in its build stage and sets the arena count with ENV (the pool's size is the
    // pod's business: its cores are the Deployment's limit, and serve() logs a reminder where it is left at 4)
    expect(pkg.scripts.start).toBe(
      `node scripts/build-if-stale.mjs && MALLOC_ARENA_MAX=\${MALLOC_ARENA_MAX:-2} ` +
        `UV_THREADPOOL_SIZE=\${UV_THREADPOOL_SIZE:-$(node -p 'Math.max(4, os.availableParallelism())')} exec ${cmd.join(" ")}`,
    );
    expect(dockerfile).toMatch(/^RUN npm run build/m);
    expect(dockerfile).toMatch(/MALLOC_ARENA_MAX=2/);
    for (const script of pkg.scripts.postinstall.match(/scripts\/[\w-]+\.mjs/g)) expect(contextCopies).toContain(script);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/BATCHWISE_MODELS_DIR=\/models/);
  });
});

describe("a classifier started with the Deployment's environment", () => {
  let child: ChildProcess;
  let url: string;
  let exited: Promise<number | null>;
  const container = () => one("Deployment").spec.template.spec.containers[0];

  beforeAll(async () => {
    // As in the pod, except: loopback and a free port (this is a shared machine), and the team's models folder.
    const env = { ...process.env, ...envOf(container()), BATCHWISE_HOST: "127.0.0.1", PORT: "0", BATCHWISE_MODELS_DIR: modelsDir };
    // the image's command (dist/ is built by the suite's global setup)
    child = spawn(process.execPath, ["dist/cli.js", "serve", "classifier"], { env, stdio: ["ignore", "pipe", "pipe"] });
    exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    url = await new Promise<string>((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error(`no URL within 90 s: ${log}`)), 90_000);
      const onData = (chunk: Buffer) => {
        log += chunk;
        const match = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
        if (match) clearTimeout(timer), resolve(match[1]);
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      void exited.then((code) => reject(new Error(`server exited (${code}): ${log}`)));
    });
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
  });

  it("answers the liveness and readiness probe paths with 200", async () => {
    for (const probe of [container().livenessProbe, container().readinessProbe]) {
      const response = await fetch(`${url}${probe.httpGet.path}`);
      expect(response.status, probe.httpGet.path).toBe(200);
      expect(await response.text()).toBe("ok");
    }
  });

  it("runs the workers, batch size and drain period the Deployment sets", async () => {
    const info = JSON.stringify(await (await fetch(`${url}/info`)).json());
    const env = envOf(container());
    expect(info).toContain(`"workersPerDevice":${env[envName("workersPerDevice")]}`);
    expect(info).toContain(`"maxBatchSize":${env[envName("maxBatchSize")]}`);
    expect(info).toContain(`"drainPeriod":${env[envName("drainPeriod")]}`);
  });

  it("exports the HPA's metric per endpoint on /metrics, with the scrape path the pod annotations name", async () => {
    const metric = one("HorizontalPodAutoscaler").spec.metrics[0].pods.metric.name;
    const text = await (await fetch(`${url}${one("Deployment").spec.template.metadata.annotations["prometheus.io/path"]}`)).text();
    expect(text).toMatch(new RegExp(`^${metric}\\{endpoint="/predict"\\} \\d+$`, "m"));
    for (const name of ["batchwise_inflight_requests", "batchwise_busy_workers", "batchwise_saturation"]) expect(text).toMatch(new RegExp(`^${name}\\{endpoint="/predict"\\} `, "m"));
  });

  it("on SIGTERM turns not-ready at once and stays alive while it drains", async () => {
    child.kill("SIGTERM");
    const ready = container().readinessProbe.httpGet.path;
    const live = container().livenessProbe.httpGet.path;
    let readyStatus = 0;
    for (let i = 0; i < 50 && readyStatus !== 503; i++) {
      readyStatus = (await fetch(`${url}${ready}`)).status;
      if (readyStatus !== 503) await new Promise((r) => setTimeout(r, 20));
    }
    expect(readyStatus).toBe(503);
    expect((await fetch(`${url}${live}`)).status).toBe(200);
    expect(await exited).toBe(0);
  }, 60_000);
});

function envOf(container: { env: { name: string; value: string }[] }): Record<string, string> {
  return Object.fromEntries(container.env.map((e) => [e.name, e.value]));
}

/** The environment variable the server reads for an option (the first one its declaration names). */
function envName(option: string): string {
  const found = OPTIONS.find((o) => o.name === option)?.env?.[0];
  if (!found) throw new Error(`option ${option} has no environment variable`);
  return found;
}

/** A Kubernetes CPU quantity ("2", "1500m") in cores. */
function cpuCores(quantity: string | number): number {
  const text = String(quantity);
  return text.endsWith("m") ? Number(text.slice(0, -1)) / 1000 : Number(text);
}

function hasKubectl(): boolean {
  return spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
}
