import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * Tests that run the library as users get it (the README's examples, the packed tarball, compiled one-file serving)
 * import the built `dist/`. Build it once per run, and only when a source file is newer than the last build.
 */
export default function setup() {
  const stamp = path.resolve("dist/.build-stamp");
  const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  if (newest(path.resolve("src")) <= built) return;
  rmSync(path.resolve("dist"), { recursive: true, force: true }); // no stale modules from renamed files
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  writeFileSync(stamp, new Date().toISOString());
}

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(file) : statSync(file).mtimeMs);
  }
  return latest;
}
