/**
 * The one seam between the native façades and a runtime's FFI. Handles travel as `u64`
 * (pointer-sized on every 64-bit target the bridge supports), so neither runtime needs its
 * own pointer type; buffers are Uint8Arrays that the façades allocate and own.
 */

export type ArgType = "i32" | "u32" | "u64" | "buf";
export type ReturnType = "i32" | "cstr";

export interface SymbolDef {
  readonly args: readonly ArgType[];
  readonly returns: ReturnType;
}
export type SymbolTable = Readonly<Record<string, SymbolDef>>;

export type NativeArg = number | bigint | Uint8Array;
export type NativeFn = (...args: NativeArg[]) => number | string | null;

/** An opened library: one callable per symbol of the table it was opened with. */
export interface NativeLibrary {
  readonly path: string;
  readonly fns: Readonly<Record<string, NativeFn>>;
  close(): void;
}

/** A runtime's FFI (Bun's `bun:ffi` or `Deno.dlopen`). */
export interface FfiAdapter {
  readonly name: "bun" | "deno";
  /** Opens `path` binding every symbol of `table`; throws if the library or any symbol is missing. */
  open(path: string, table: SymbolTable): NativeLibrary;
  /** Reads the NUL-terminated string at address `pointer`. */
  cstring(pointer: bigint): string;
  /** The address of `buf`'s first byte; valid while `buf` is referenced and not resized. */
  addressOf(buf: Uint8Array): bigint;
}
