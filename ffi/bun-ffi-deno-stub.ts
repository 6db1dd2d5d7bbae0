/**
 * Deno maps `bun:ffi` here (see deno.json) so `deno check` can type-check `ffi/bun.ts`. Deno
 * never executes it: `loadFfiAdapter()` picks `ffi/deno.ts` there instead.
 */
const unavailable = (): never => {
  throw new Error("bun:ffi is not available on Deno; use Deno.dlopen through ffi/deno.ts");
};

export const FFIType = { i32: 5, u32: 6, u64: 8, ptr: 12, cstring: 14 } as const;
export type FFIType = (typeof FFIType)[keyof typeof FFIType];

export class CString extends String {
  constructor(_pointer: number) {
    super();
    unavailable();
  }
}

export function dlopen(
  _path: string,
  _symbols: Record<string, { args: FFIType[]; returns: FFIType }>,
): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void } {
  return unavailable();
}

export function ptr(_buf: ArrayBufferView): number {
  return unavailable();
}
