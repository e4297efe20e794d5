/** Plain-text tables for benchmark output: what a terminal, a CI log and a notebook's text output all show well. */

export interface Column {
  header: string;
  /** Numbers read best right-aligned; labels left-aligned (the default for the first column). */
  align?: "left" | "right";
}

export function formatTable(columns: (Column | string)[], rows: string[][]): string {
  const cols = columns.map((c, i): Required<Column> => {
    const column = typeof c === "string" ? { header: c } : c;
    return { header: column.header, align: column.align ?? (i === 0 ? "left" : "right") };
  });
  const widths = cols.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (cols[i].align === "left" ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(cols.map((c) => c.header)), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** A number for a table cell: no false precision, "n/a" for missing values. */
export function cell(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(digits);
}

/** First line, at most 200 characters: a model-not-found message with install instructions is long. */
export function shorten(message: string): string {
  const line = message.split("\n")[0];
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
