/** A child process's stdout as JSON lines, awaited one by one (the share tests' consumers print one per step). */
import type { Readable } from "node:stream";

import type { Json } from "./api-call.ts";

/** `next(n)`: the n-th line (1-based), parsed, once it has arrived. */
export function jsonLines(out: Readable): { next(n: number): Promise<Json> } {
  const lines: Json[] = [];
  const waiters: (() => void)[] = [];
  let buf = "";
  out.on("data", (d) => {
    buf += String(d);
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      lines.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  return {
    async next(n) {
      while (lines.length < n) await new Promise<void>((r) => waiters.push(r));
      return lines[n - 1]!;
    },
  };
}
