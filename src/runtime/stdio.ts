/**
 * Standard output without `process.stdout`: in a compiled Bun binary the first use of
 * `process.stdout` costs about 12 ms of stream set-up, twice the whole hello-world start-up,
 * so `--list` writes through the runtime's own file API instead. This is a runtime adapter:
 * it is the one place besides `bun.ts`/`deno.ts` that names `Bun` or `Deno`.
 */

interface BunStdout {
  Bun: { write(dest: unknown, data: string | Uint8Array): Promise<number>; stdout: unknown };
}
interface DenoStdout {
  Deno: { stdout: { write(p: Uint8Array): Promise<number> } };
}

/**
 * Writes all of `text` to standard output. Not an `async` function: on the `--list` path each
 * extra async frame costs tens of thousands of instructions at a cold start.
 */
export function writeStdout(text: string): Promise<unknown> {
  const g = globalThis as unknown as Partial<BunStdout & DenoStdout>;
  if (g.Bun !== undefined) return g.Bun.write(g.Bun.stdout, text);
  if (g.Deno !== undefined) return writeAllDeno(g.Deno.stdout, new TextEncoder().encode(text));
  return Promise.reject(new Error("Cannot write to stdout: gpu-bridge-host runs on Bun or Deno, and this is neither"));
}

async function writeAllDeno(stdout: DenoStdout["Deno"]["stdout"], bytes: Uint8Array): Promise<void> {
  let rest = bytes;
  while (rest.length > 0) rest = rest.subarray(await stdout.write(rest));
}
