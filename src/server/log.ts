/** The server's log: stderr by default, silenced with `log: false`, or a function that receives each line. */
export function makeLogger(option: boolean | ((line: string) => void) | undefined): (line: string) => void {
  if (option === false) return () => {};
  if (typeof option === "function") return option;
  return (line) => console.error(`[batchwise] ${line}`);
}
