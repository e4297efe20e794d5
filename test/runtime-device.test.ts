import { describe, expect, it } from "vitest";
import { availableCores, nvidiaGpuCount, probeProvider, resolveAccelerator } from "../src/runtime/device.js";
import { executionProviders, sessionOptions, settingsFor, summarizeOrtError } from "../src/runtime/onnx.js";

describe("accelerator choice", () => {
  it("cpu is always usable; the CPU provider runs the probe model", async () => {
    expect(await resolveAccelerator("cpu")).toEqual({ accelerator: "cpu", count: 1, reason: "requested" });
    expect(await probeProvider("cpu")).toEqual({ ok: true });
    expect(availableCores()).toBeGreaterThanOrEqual(1);
  });

  it("auto takes a GPU only when nvidia-smi lists one and its provider loads; otherwise cpu with the reason", async () => {
    const decision = await resolveAccelerator("auto");
    const gpus = nvidiaGpuCount();
    if (gpus.count === 0) {
      expect(decision.accelerator).toBe("cpu");
      expect(decision.reason).toMatch(/no GPU/);
    } else {
      expect(["cuda", "webgpu", "cpu"]).toContain(decision.accelerator);
      if (decision.accelerator !== "cpu") expect((await probeProvider(decision.accelerator)).ok).toBe(true);
    }
  });

  it("an explicit GPU accelerator that cannot load is a startup error naming what is missing", async () => {
    for (const choice of ["cuda", "webgpu"] as const) {
      const probe = await probeProvider(choice);
      if (probe.ok && (choice !== "cuda" || nvidiaGpuCount().count > 0)) continue; // a machine where it works
      const error = await resolveAccelerator(choice).then(() => undefined, (e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      expect(error!.message).toMatch(choice === "cuda" ? /NVIDIA GPU|ONNXRUNTIME_NODE_INSTALL=cuda12/ : /WebGPU/);
      expect(error!.message).toMatch(/--accelerator cpu/);
    }
  });

  it("rejects an unknown accelerator", async () => {
    await expect(resolveAccelerator("tpu" as never)).rejects.toThrow(/auto, cpu, cuda or webgpu/);
  });
});

describe("session settings", () => {
  it("threads from the device, one inter-op thread, no spinning when the worker has only a share of the cores", () => {
    const shared = sessionOptions(settingsFor({ accelerator: "cpu", index: 0, threads: 1, id: "cpu" }));
    expect(shared).toMatchObject({ intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all" });
    if (availableCores() > 1) expect(shared.extra).toEqual({ session: { intra_op: { allow_spinning: "0" } } });
    const whole = sessionOptions(settingsFor({ accelerator: "cpu", index: 0, threads: availableCores(), id: "cpu" }));
    expect(whole.extra).toEqual({ session: { intra_op: { allow_spinning: "1" } } });
  });

  it("GPU providers come first with the CPU as fallback", () => {
    expect(executionProviders("cpu")).toEqual(["cpu"]);
    expect(executionProviders("cuda", 1)).toEqual([{ name: "cuda", deviceId: 1 }, "cpu"]);
    expect(executionProviders("webgpu")).toEqual(["webgpu", "cpu"]);
  });

  it("onnxruntime errors are cut down to the part a user can act on", () => {
    const ort =
      "/onnxruntime_src/onnxruntime/core/session/inference_session.cc:1234 onnxruntime::InferenceSession::Initialize() " +
      "Could not find an implementation for Conv(22) node with name 'Conv_0_quant'";
    expect(summarizeOrtError(new Error(ort))).toBe("Could not find an implementation for Conv(22)");
  });
});
