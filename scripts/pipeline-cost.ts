/**
 * What the request record, its stage marks and the Server-Timing header cost per request on the main thread, in
 * isolation (no HTTP): `npx tsx scripts/pipeline-cost.ts`. The end-to-end figure is `bench main-thread`.
 */
import { Pipeline } from "../src/server/pipeline.js";
import { serverTimingHeader } from "../src/server/server-timing.js";

async function measure(serverTiming: boolean, headers: Record<string, string>) {
  const pipeline = await Pipeline.create({ serverTiming }, () => {});
  const request = { headers, id: "req-1", method: "POST", batchwiseRecord: null } as never;
  let sink = 0;
  const run = (n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const record = pipeline.begin(request, { raw: { once() {} } } as never, "/predict");
      if (record) {
        record.beforeDecode(); record.afterDecode();
        record.enqueuedAt = performance.now(); record.dequeuedAt = performance.now(); record.batchSize = 8; record.predictMs = 1.5;
        record.beforeEncode(); record.afterEncode();
        if (serverTiming) sink += serverTimingHeader(record, 3.2).length;
      }
    }
    return ((performance.now() - t0) * 1e6) / n;
  };
  run(200_000);
  const runs = [run(500_000), run(500_000), run(500_000)].sort((a, b) => a - b);
  if (sink < 0) console.log(sink); // keeps the headers from being optimised away
  return `${runs[1].toFixed(0)} ns/request (runs ${runs.map((r) => r.toFixed(0)).join(", ")})`;
}
console.log("serverTiming on, no deadline:   ", await measure(true, {}));
console.log("serverTiming on, with deadline: ", await measure(true, { "x-request-timeout": "2.5" }));
console.log("serverTiming off, no deadline:  ", await measure(false, {}));
