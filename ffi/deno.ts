/** The Deno FFI adapter: the only module that calls `Deno.dlopen`. */
import type { ArgType, FfiAdapter, NativeArg, NativeFn, NativeLibrary, SymbolTable } from "./types.ts";

type DenoNative = "i32" | "u32" | "u64" | "buffer" | "pointer";
interface DenoFfi {
  dlopen(path: string, symbols: Record<string, { parameters: DenoNative[]; result: DenoNative }>): {
    symbols: Record<string, (...a: unknown[]) => unknown>;
    close(): void;
  };
  UnsafePointer: { create(value: bigint): unknown; of(buf: Uint8Array): unknown; value(pointer: unknown): bigint };
  UnsafePointerView: { getCString(pointer: unknown): string };
}

const deno = (globalThis as unknown as { Deno: DenoFfi }).Deno;
const ARG: Record<ArgType, DenoNative> = { i32: "i32", u32: "u32", u64: "u64", buf: "buffer" };

function open(path: string, table: SymbolTable): NativeLibrary {
  const defs: Record<string, { parameters: DenoNative[]; result: DenoNative }> = {};
  for (const [name, def] of Object.entries(table)) {
    defs[name] = { parameters: def.args.map((a) => ARG[a]), result: def.returns === "cstr" ? "pointer" : "i32" };
  }
  const lib = deno.dlopen(path, defs);
  const fns: Record<string, NativeFn> = {};
  for (const [name, def] of Object.entries(table)) {
    const sym = lib.symbols[name]!;
    fns[name] = def.returns === "cstr"
      ? (...a: NativeArg[]) => {
        const p = sym(...a);
        return p === null ? null : deno.UnsafePointerView.getCString(p);
      }
      : (...a: NativeArg[]) => sym(...a) as number;
  }
  return { path, fns, close: () => lib.close() };
}

/** The Deno FFI adapter (needs --allow-ffi). */
export const denoFfi: FfiAdapter = {
  name: "deno",
  open,
  cstring: (pointer) => deno.UnsafePointerView.getCString(deno.UnsafePointer.create(pointer)),
  addressOf: (buf) => deno.UnsafePointer.value(deno.UnsafePointer.of(buf)),
};
