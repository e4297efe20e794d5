import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { runBenchCli, runSoakCli } from "../src/bench/cli.js";
import { benchUsage, commandHelp, COMMANDS, FlagError, FLAGS, parseFlags, type CommandName } from "../src/bench/flags.js";

// Every toolkit command reads its flags from one table (src/bench/flags.ts): its --help and its validation come from
// the declarations, so these tests read the table and hold for any flag added to it.

const commands = Object.keys(COMMANDS) as CommandName[];

describe("the toolkit's flag table", () => {
  it("gives every command a --help listing each of its flags, with the defaults the table declares", () => {
    for (const command of commands) {
      const help = commandHelp(command);
      for (const [name, { default: fallback }] of Object.entries(COMMANDS[command].flags) as [keyof typeof FLAGS, { default?: unknown }][]) {
        expect(help, `${command} --${FLAGS[name].flag}`).toContain(`--${FLAGS[name].flag}`);
        if (fallback !== undefined) expect(help, `${command} --${FLAGS[name].flag}`).toContain(`(default ${Array.isArray(fallback) ? fallback.join(",") : fallback})`);
      }
    }
    expect(benchUsage()).toMatch(/^ {2}main-thread +the server main thread/m);
    expect(benchUsage()).not.toMatch(/^ {2}soak/m);
  });

  it("parses each kind into its typed value, fills defaults, and takes aliases and the quick environment variable", () => {
    expect(parseFlags("api", ["--concurrency", "1,8", "--requests", "10", "--body", "binary", "--server-pid", "42"])).toEqual({
      url: "http://127.0.0.1:8000",
      path: undefined,
      concurrencyLevels: [1, 8],
      requests: 10,
      waves: undefined,
      body: "binary",
      imagesDir: undefined,
      serverPid: 42,
      json: undefined,
    });
    expect(parseFlags("pipeline", ["--image", "a.jpg", "--image", "b.jpg", "--images", "256", "--threads-per-worker", "2"])).toMatchObject({
      image: ["a.jpg", "b.jpg"],
      imageCount: 256,
      threads: 2,
    });
    expect(parseFlags("soak", ["--minutes", "0.5"], {})).toMatchObject({ minutes: 0.5, concurrency: 64, window: 30, warmup: 60, precision: "auto" });
    expect(parseFlags("suite", [], { BATCHWISE_QUICK: "1" })?.quick).toBe(true);
    expect(parseFlags("suite", [], {})?.quick).toBeUndefined();
    expect(parseFlags("baseline", ["--help"])).toBeUndefined();
  });

  it("refuses a bad value or an unknown flag with an error that names the flag", () => {
    const refused = (command: CommandName, argv: string[]) => {
      try {
        parseFlags(command, argv, {});
      } catch (error) {
        expect(error).toBeInstanceOf(FlagError);
        return (error as Error).message;
      }
      throw new Error(`${command} ${argv.join(" ")} was accepted`);
    };
    expect(refused("api", ["--requests", "0"])).toBe('--requests must be a whole number ≥ 1, got "0"');
    expect(refused("api", ["--requests", "12abc"])).toBe('--requests must be a whole number ≥ 1, got "12abc"');
    expect(refused("api", ["--concurrency", "1,,8"])).toBe('--concurrency must be comma-separated whole numbers ≥ 1, got "1,,8"');
    expect(refused("soak", ["--minutes", "0.01"])).toBe('--minutes must be a number ≥ 0.05, got "0.01"');
    expect(refused("soak", ["--precision", "fp64"])).toBe('--precision must be one of auto, fp32, fp16, bf16, int8, got "fp64"');
    expect(refused("baseline", ["--url", "http://x"])).toMatch(/Unknown option '--url' for batchwise bench baseline/);
    expect(refused("connection-storm", ["--idle=-1"])).toBe('--idle must be a whole number ≥ 0, got "-1"');
  });

  it("is the only flag parser of the toolkit: no hand-written parseArgs or Number(flag) in src/bench or the scripts", () => {
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : /\.ts$/.test(e.name) ? [path.join(dir, e.name)] : []));
    const parsers = [...walk("src/bench"), ...walk("scripts")].filter((f) => /\bparseArgs\(/.test(readFileSync(f, "utf8"))).map((f) => f.split(path.sep).join("/"));
    expect(parsers).toEqual(["src/bench/flags.ts"]);
    const flagNumbers = [...walk("src/bench"), ...walk("scripts")].filter((f) => /Number\((values|flags)\b/.test(readFileSync(f, "utf8")));
    expect(flagNumbers).toEqual([]);
  });
});

describe("the commands read it", () => {
  it("bench <kind> --help and soak --help print the table's help and run nothing", async () => {
    const printed: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: string) => void printed.push(line));
    try {
      expect(await runBenchCli(["main-thread", "--help"])).toBeUndefined();
      expect(await runSoakCli(["--help"])).toBeUndefined();
      expect(await runBenchCli([])).toBeUndefined();
    } finally {
      log.mockRestore();
    }
    expect(printed).toEqual([commandHelp("main-thread"), commandHelp("soak"), benchUsage()]);
  });

  it("soak refuses a bad flag before starting anything", async () => {
    await expect(runSoakCli(["--window", "0"])).rejects.toThrow('--window must be a number ≥ 1, got "0"');
    await expect(runBenchCli(["soak"])).rejects.toThrow(/unknown bench kind "soak"/);
  });
});
