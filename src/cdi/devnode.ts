/**
 * Reading a host device node: its type and its full major and minor numbers. The kernel's
 * `dev_t` keeps 12 major bits and 20 minor bits (glibc's split); nothing is truncated to a byte,
 * so `nvidia-uvm` at major 510 stays 510.
 */
import { lstatSync } from "node:fs";

export interface HostNode {
  readonly type: "b" | "c" | "p";
  readonly major: number;
  readonly minor: number;
  /** Permission bits (e.g. 0o666). */
  readonly fileMode: number;
  readonly uid: number;
  readonly gid: number;
}

/** glibc's `major()` and `minor()` over a 64-bit `dev_t`. */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

/** The inverse of splitDev, for tests and fakes. */
export function makeDev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & 0xfffff000n) << 32n) | (mi & 0xffn) | ((mi & 0xffffff00n) << 12n);
}

/** What kind of file a path is, when it is not a device node (for error messages). */
export class NotADeviceError extends Error {
  override name = "NotADeviceError";
}

/**
 * `lstat` of `path` (symlinks not followed, as the reference does): the node, null when nothing
 * is there, or NotADeviceError when something that is not a device node is.
 */
export function statNode(path: string): HostNode | null {
  let st;
  try {
    st = lstatSync(path, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT" || (error as NodeJS.ErrnoException).code === "ENOTDIR") return null;
    throw error;
  }
  const type = st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : st.isFIFO() ? "p" : null;
  if (type === null) throw new NotADeviceError(`${path} is not a device node`);
  const { major, minor } = type === "p" ? { major: 0, minor: 0 } : splitDev(st.rdev);
  return { type, major, minor, fileMode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid) };
}
