// @ts-expect-error -- a plain .mjs script (npm start runs it too), no declarations
import { buildIfStale } from "../scripts/build-if-stale.mjs";

/**
 * Tests that run the library as users get it (the README's examples, the packed tarball, compiled one-file serving)
 * import the built `dist/`. Build it once per run, and only when a source file is newer than the last build.
 */
export default function setup() {
  buildIfStale();
}
