/**
 * Deno maps `bun:ffi` here (see deno.json) so `deno check` can follow Bun-only modules. Deno
 * never executes them: the runtime detector loads `ffi/deno.ts` there instead.
 */
export function dlopen(): never {
  throw new Error("bun:ffi is not available on Deno; use Deno.dlopen through ffi/deno.ts");
}
