/**
 * The option and error tables of docs/reference.md, generated from their declarations (src/server/options.ts,
 * src/api/errors.ts). `npm run readme:tables` rewrites them in place; test/readme-tables.test.ts fails when they differ.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { errorCodes } from "../src/api/errors.js";
import { OPTIONS } from "../src/server/options.js";

export function optionsTable(): string {
  const rows = OPTIONS.map((d) => {
    const flags = d.flag ? [d.flag, ...(d.aliases ?? [])].map((f) => `\`--${f}\``).join(", ") : "";
    const vars = d.env ? d.env.map((v) => `\`${v}\``).join(", ") : "";
    return `| \`${d.name}\` | ${d.scope} | ${flags} | ${vars} | ${d.default} | ${d.doc} |`;
  });
  return ["| option | scope | CLI flag | environment | default | meaning |", "| --- | --- | --- | --- | --- | --- |", ...rows].join("\n");
}

export function errorTable(): string {
  const rows = Object.entries(errorCodes).map(([code, { status, message }]) => `| \`${code}\` | ${status} | ${message.replace(/\|/g, "\\|")} |`);
  return ["| code | status | default message |", "| --- | --- | --- |", ...rows].join("\n");
}

const TABLES: Record<string, () => string> = { options: optionsTable, errors: errorTable };

/** The document that holds the generated tables. */
export const TABLES_FILE = "docs/reference.md";

/** The document with every generated table replaced by its current rendering. */
export function renderReadme(readme: string): string {
  let out = readme;
  for (const [name, render] of Object.entries(TABLES)) {
    const pattern = new RegExp(`(<!-- table:${name} -->\\n)[\\s\\S]*?(<!-- /table:${name} -->)`);
    if (!pattern.test(out)) throw new Error(`${TABLES_FILE} has no <!-- table:${name} --> … <!-- /table:${name} --> block`);
    out = out.replace(pattern, (_m, start: string, end: string) => `${start}${render()}\n${end}`);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(TABLES_FILE, renderReadme(readFileSync(TABLES_FILE, "utf8")));
  console.log(`${TABLES_FILE} tables regenerated`);
}
