import { describe, expect, it } from "vitest";
import { Batcher } from "../src/server/batcher.js";
import { Cancellation } from "../src/server/cancellation.js";
import type { WorkerPool } from "../src/server/worker-pool.js";

// The batcher's dispatch policy for requests that arrive in one event-loop turn, against a pool whose one worker is
// always free: what matters here is when each batch leaves the queue and what it holds.
function batcherWith(admitsIntoRunning: boolean) {
  const dispatched: unknown[][] = [];
  const pool = {
    admitsIntoRunning,
    busyCount: 0,
    take: () => ({}),
    run: async (_runner: unknown, inputs: unknown[]) => {
      dispatched.push(inputs);
      return { outputs: inputs, errors: inputs.map(() => undefined) };
    },
  };
  const batcher = new Batcher(pool as unknown as WorkerPool, { maxBatchSize: 8, batchTimeout: 0.01, queueTimeout: 30, maxQueueSize: 64 });
  return { batcher, dispatched };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("Batcher: requests that arrive in the same turn", () => {
  it("join one batch after the turn when a worker runs one batch at a time", async () => {
    const { batcher, dispatched } = batcherWith(false);
    const answers = ["a", "b", "c"].map((input) => batcher.submit(input, new Cancellation()));
    expect(dispatched).toEqual([]); // the lone first request waits for the rest of the turn
    await nextTurn();
    expect(dispatched).toEqual([["a", "b", "c"]]);
    expect(await Promise.all(answers)).toEqual(["a", "b", "c"]);
  });

  it("send the first at once and the rest as one batch when the worker admits batches into its running loop", async () => {
    const { batcher, dispatched } = batcherWith(true);
    const streams = ["a", "b", "c"].map((input) => batcher.submitStream(input, new Cancellation()));
    expect(dispatched).toEqual([["a"]]); // no turn waited: the first output is not held back
    await nextTurn();
    expect(dispatched).toEqual([["a"], ["b", "c"]]);
    for (const stream of streams) for await (const _ of stream) expect.fail("the fake pool streams nothing");
  });
});
