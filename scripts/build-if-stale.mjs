/**
 * Compile src/ into dist/ when a source file is newer than the last build (dist/.build-stamp), else do nothing.
 * `npm start`, `npm run cli` and `npm run bench` run the compiled code: from source, every thread that loads TypeScript (the main
 * thread and each model worker) starts a module-loader thread of its own for tsx, a V8 isolate each that stays for the
 * server's life. The test suite's global setup calls this too.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function buildIfStale() {
  const stamp = path.join(root, "dist", ".build-stamp");
  const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  if (newest(path.join(root, "src")) <= built) return false;
  rmSync(path.join(root, "dist"), { recursive: true, force: true }); // no stale modules from renamed files
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], {
    stdio: "inherit",
  });
  // The bin, executable as npm makes it in an installed package: `npx batchwise` in this checkout runs it.
  chmodSync(path.join(root, "dist", "cli.js"), 0o755);
  writeFileSync(stamp, new Date().toISOString());
  return true;
}

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(file) : statSync(file).mtimeMs);
  }
  return latest;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    if (buildIfStale()) console.error("batchwise: compiled src/ into dist/");
  } catch {
    console.error("batchwise: compiling src/ failed (the errors are above)");
    process.exit(1);
  }
}
