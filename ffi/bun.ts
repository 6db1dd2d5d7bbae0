/** The Bun FFI adapter: the only module that imports `bun:ffi`. */
import { CString, dlopen, FFIType, ptr } from "bun:ffi";
import type { ArgType, FfiAdapter, NativeArg, NativeFn, NativeLibrary, SymbolTable } from "./types.ts";

const ARG: Record<ArgType, FFIType> = { i32: FFIType.i32, u32: FFIType.u32, u64: FFIType.u64, buf: FFIType.ptr };

function open(path: string, table: SymbolTable): NativeLibrary {
  const defs: Record<string, { args: FFIType[]; returns: FFIType }> = {};
  for (const [name, def] of Object.entries(table)) {
    defs[name] = { args: def.args.map((a) => ARG[a]), returns: def.returns === "cstr" ? FFIType.cstring : FFIType.i32 };
  }
  const lib = dlopen(path, defs);
  const fns: Record<string, NativeFn> = {};
  for (const [name, def] of Object.entries(table)) {
    const sym = lib.symbols[name] as unknown as (...a: NativeArg[]) => number | CString | null;
    fns[name] = def.returns === "cstr"
      ? (...a) => {
        const r = sym(...a);
        return r === null ? null : String(r);
      }
      : (...a) => sym(...a) as number;
  }
  return { path, fns, close: () => lib.close() };
}

/** The Bun FFI adapter. */
export const bunFfi: FfiAdapter = {
  name: "bun",
  open,
  cstring: (pointer) => new CString(Number(pointer) as never).toString(),
  addressOf: (buf) => BigInt(ptr(buf)),
};
