import { cell, formatTable } from "./table.js";

/**
 * Performance targets checked at the end of a benchmark run. A target is data (a name, how to read the measured
 * value from the results, a comparison, a threshold), so adding one is adding a row to a list.
 */
export interface Target<R> {
  name: string;
  unit: string;
  /** The measured value, or null when the run did not measure it (reported as "not measured", not as a failure). */
  measure: (results: R) => number | null;
  /** Pass when measured `op` threshold. */
  op: ">=" | "<=";
  threshold: number | ((results: R) => number);
  /** How the threshold was chosen, shown beside it. */
  note?: string;
  /**
   * An absolute figure (ms, MiB, img/s) with no baseline measured in the same run: it passes or fails with the
   * machine as much as with the code, so it is shown with the CPU it ran on. Ratios to a same-run baseline leave it off.
   */
  machineDependent?: boolean;
}

export interface TargetOutcome {
  name: string;
  unit: string;
  measured: number | null;
  op: ">=" | "<=";
  threshold: number;
  /** null = not measured. */
  pass: boolean | null;
  note?: string;
  /** See {@link Target.machineDependent}: read it with the results' CPU line. */
  machineDependent: boolean;
}

export function evaluateTargets<R>(targets: Target<R>[], results: R): TargetOutcome[] {
  return targets.map((t) => {
    let measured: number | null;
    try {
      measured = t.measure(results);
    } catch {
      measured = null; // a missing part of the results (a config that failed) means "not measured"
    }
    if (measured !== null && !Number.isFinite(measured)) measured = null;
    const threshold = typeof t.threshold === "function" ? t.threshold(results) : t.threshold;
    const pass = measured === null ? null : t.op === ">=" ? measured >= threshold : measured <= threshold;
    return { name: t.name, unit: t.unit, measured, op: t.op, threshold, pass, ...(t.note ? { note: t.note } : {}), machineDependent: t.machineDependent ?? false };
  });
}

/** The targets, each marked by what it compares with; `cpu` (describeCpu's line) heads the machine-dependent ones. */
export function formatTargetsTable(outcomes: TargetOutcome[], cpu?: string): string {
  const table = formatTable(
    ["target", "measured", "wanted", "result", { header: "basis", align: "left" }, { header: "note", align: "left" }],
    outcomes.map((o) => [
      o.name,
      `${cell(o.measured, 2)} ${o.unit}`,
      `${o.op} ${cell(o.threshold, 2)} ${o.unit}`,
      o.pass === null ? "not measured" : o.pass ? "PASS" : "FAIL",
      targetBasis(o),
      o.note ?? "",
    ]),
  );
  return cpu && outcomes.some((o) => o.machineDependent) ? `${table}
machine-dependent targets were measured on: ${cpu}` : table;
}

/** "same-run baseline" for a ratio that holds on any machine; "machine-dependent" for an absolute figure. */
function targetBasis(outcome: Pick<TargetOutcome, "machineDependent">): string {
  return outcome.machineDependent ? "machine-dependent" : "same-run baseline";
}
