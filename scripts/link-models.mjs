// Links the team's shared model folders into data/models (the default BATCHWISE_MODELS_DIR), so `npm start` works
// right after `npm ci` on machines that have ../shared/models. Model files are never copied or committed; on a
// machine without ../shared this does nothing, and models resolve (or download) as data/models.json says.
import { existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import path from "node:path";

const shared = path.resolve(process.env.BATCHWISE_SHARED_MODELS ?? path.join("..", "shared", "models"));
const target = path.resolve("data", "models");
if (!existsSync(shared)) process.exit(0);
mkdirSync(target, { recursive: true });
const linked = [];
for (const entry of readdirSync(shared, { withFileTypes: true })) {
  if (!entry.isDirectory() || entry.name === "tools") continue;
  const link = path.join(target, entry.name);
  if (existsSync(link) || isSymlink(link)) continue;
  symlinkSync(path.join(shared, entry.name), link, "dir");
  linked.push(entry.name);
}
if (linked.length) console.log(`linked ${linked.join(", ")} from ${shared} into data/models`);

function isSymlink(file) {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}
