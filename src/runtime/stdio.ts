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

/** Writes all of `text` to standard output. */
export async function writeStdout(text: string): Promise<void> {
  const g = globalThis as unknown as Partial<BunStdout & DenoStdout>;
  if (g.Bun !== undefined) {
    await g.Bun.write(g.Bun.stdout, text);
    return;
  }
  if (g.Deno !== undefined) {
    let rest = new TextEncoder().encode(text);
    while (rest.length > 0) rest = rest.subarray(await g.Deno.stdout.write(rest));
    return;
  }
  throw new Error("Cannot write to stdout: gpu-bridge-host runs on Bun or Deno, and this is neither");
}
