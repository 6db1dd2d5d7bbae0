/**
 * The two libc calls a job's child process needs to die with the bridge: `prctl` with
 * `PR_SET_PDEATHSIG` (Linux: the kernel sends the signal when the parent exits, however it
 * exits, even while the child is busy in a kernel that never yields) and `getppid`.
 */
import type { FfiAdapter, SymbolTable } from "./types.ts";

const LIBC: SymbolTable = {
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  getppid: { args: [], returns: "i32" },
};
const PR_SET_PDEATHSIG = 1;
const SIGKILL = 9;

/**
 * Arms SIGKILL for when the parent dies; returns false if the parent `expected` is already
 * gone (this process was re-parented before it could arm), in which case the caller must exit.
 * Throws when libc cannot be opened (not Linux glibc).
 */
export function dieWithParent(adapter: FfiAdapter, expected: number): boolean {
  const libc = adapter.open("libc.so.6", LIBC);
  const rc = libc.fns.prctl!(PR_SET_PDEATHSIG, BigInt(SIGKILL), 0n, 0n, 0n) as number;
  if (rc !== 0) throw new Error(`Cannot arm the parent-death signal: prctl returned ${rc}`);
  return libc.fns.getppid!() === expected;
}
