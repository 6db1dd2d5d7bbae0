/**
 * Standard output without `process.stdout`: in a compiled Bun binary the first use of
 * `process.stdout` costs about 12 ms of stream set-up, twice the whole hello-world start-up,
 * so `--list` writes through the runtime's own file API instead (and standard input is read
 * the same way, for the same reason). This is a runtime adapter:
 * it is the one place besides `bun.ts`/`deno.ts` that names `Bun` or `Deno`.
 */

import { readText } from "../util/text.ts";

interface BunStdout {
  Bun: { write(dest: unknown, data: string | Uint8Array): Promise<number>; stdout: unknown; stdin: { text(): Promise<string> } };
}
interface DenoStdout {
  Deno: { stdout: { write(p: Uint8Array): Promise<number> } };
}

/**
 * Writes all of `text` to standard output. Not an `async` function: on the `--list` path each
 * extra async frame costs tens of thousands of instructions at a cold start.
 */
export function writeStdout(text: string): Promise<unknown> {
  const g = globalThis as unknown as Partial<BunStdout>;
  return g.Bun !== undefined ? g.Bun.write(g.Bun.stdout, text) : writeStdoutElsewhere(text);
}

/**
 * Apart from writeStdout: a function pays for every global it names (TextEncoder, Promise,
 * Error) the first time it runs, whichever branch runs, and Bun's path names none.
 */
function writeStdoutElsewhere(text: string): Promise<unknown> {
  const g = globalThis as unknown as Partial<DenoStdout>;
  if (g.Deno !== undefined) return writeAllDeno(g.Deno.stdout, new TextEncoder().encode(text));
  return Promise.reject(new Error("Cannot write to stdout: gpu-bridge-host runs on Bun or Deno, and this is neither"));
}

async function writeAllDeno(stdout: DenoStdout["Deno"]["stdout"], bytes: Uint8Array): Promise<void> {
  let rest = bytes;
  while (rest.length > 0) rest = rest.subarray(await stdout.write(rest));
}

/**
 * All of standard input, as text. On Bun through its own file API: iterating `process.stdin`
 * costs about 12 M instructions of stream set-up in a compiled binary (`cdi apply < config.json`
 * is on every container's start), Bun.stdin.text() about 1.5 M. Elsewhere the Node stream.
 */
export function readStdin(): Promise<string> {
  const g = globalThis as unknown as Partial<BunStdout>;
  return g.Bun !== undefined ? g.Bun.stdin.text() : readText(process.stdin);
}
