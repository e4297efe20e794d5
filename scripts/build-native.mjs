// Builds the optional native addons with node-gyp when libjpeg-turbo's headers are there (Debian: apt-get install
// libturbojpeg0-dev): the JPEG path (native/jpeg_preprocess.c) and in-place strings for long JSON values
// (native/latin1_string.c). Never fails the install: without them, preprocessing uses sharp alone (a little over twice
// the CPU per JPEG, and the classifier's /info says so) and long JSON strings are copied.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";

const header = ["/usr/include/turbojpeg.h", "/usr/local/include/turbojpeg.h", "/opt/homebrew/include/turbojpeg.h"];
if (process.env.BATCHWISE_NATIVE_JPEG === "0") process.exit(0);
if (!header.some((file) => existsSync(file))) {
  console.log("native JPEG path not built: turbojpeg.h not found (apt-get install libturbojpeg0-dev, then npm run build:native)");
  process.exit(0);
}
// npm hands scripts the node-gyp it bundles (npm_config_node_gyp), and its nodedir setting, so no download happens.
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp ? [process.execPath, [gyp, "rebuild"]] : ["node-gyp", ["rebuild"]];
const result = spawnSync(command, args, { cwd: "native", stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
if (result.status === 0) console.log("native JPEG path built: native/build/Release/jpeg_preprocess.node (and latin1_string.node)");
else console.log(`native JPEG path not built (node-gyp failed; sharp is used):\n${(result.stderr ?? String(result.error)).split("\n").slice(-15).join("\n")}`);
