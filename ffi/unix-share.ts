/**
 * The libc calls that sharing sealed memory needs and no runtime offers: `memfd_create` (host
 * memory that another process can map, standing in for VRAM under --mock), `sendmsg` with an
 * `SCM_RIGHTS` control message (a file descriptor handed over a Unix socket) and `getsockopt`
 * with `SO_PEERCRED` (who is at the other end). Linux x64 and arm64 (glibc): the struct layouts
 * below are the LP64 ones of both.
 */
import type { FfiAdapter, NativeLibrary, SymbolTable } from "./types.ts";

const LIBC: SymbolTable = {
  memfd_create: { args: ["buf", "u32"], returns: "i32" },
  sendmsg: { args: ["i32", "buf", "i32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "buf", "buf"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
};
const MFD_CLOEXEC = 1;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000;

/** The credentials the kernel recorded for a Unix socket's peer when it connected. */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** libc's descriptor calls, opened once. */
export class UnixShare {
  readonly #lib: NativeLibrary;
  readonly #ffi: FfiAdapter;

  private constructor(lib: NativeLibrary, ffi: FfiAdapter) {
    this.#lib = lib;
    this.#ffi = ffi;
  }

  /** Opens libc; throws (naming it) where it cannot be opened or lacks a symbol (not Linux glibc). */
  static open(ffi: FfiAdapter): UnixShare {
    return new UnixShare(ffi.open("libc.so.6", LIBC), ffi);
  }

  /** An anonymous shared-memory file (close-on-exec); its size is the caller's to set. */
  memfd(name: string): number {
    const fd = this.#lib.fns.memfd_create!(new TextEncoder().encode(name + "\0"), MFD_CLOEXEC) as number;
    if (fd < 0) throw new Error(`Cannot create shared memory: memfd_create returned ${fd}`);
    return fd;
  }

  /** Who is connected to the Unix socket `fd`. */
  peer(fd: number): PeerCredentials {
    const cred = new Uint8Array(12);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, 12, true);
    const rc = this.#lib.fns.getsockopt!(fd, SOL_SOCKET, SO_PEERCRED, cred, len) as number;
    if (rc !== 0) throw new Error(`Cannot read the peer's credentials of socket ${fd}: getsockopt returned ${rc}`);
    const v = new DataView(cred.buffer);
    return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
  }

  /**
   * Sends `bytes` on the connected socket `fd` in one message, with `pass` (a descriptor) as
   * `SCM_RIGHTS` when given; false when the kernel took less than all of it.
   */
  send(fd: number, bytes: Uint8Array, pass?: number): boolean {
    const iov = new Uint8Array(16);
    const iv = new DataView(iov.buffer);
    iv.setBigUint64(0, this.#ffi.addressOf(bytes), true);
    iv.setBigUint64(8, BigInt(bytes.length), true);
    // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; int fd; } padded to CMSG_SPACE(4) = 24
    const control = new Uint8Array(24);
    const cv = new DataView(control.buffer);
    cv.setBigUint64(0, 20n, true);
    cv.setInt32(8, SOL_SOCKET, true);
    cv.setInt32(12, SCM_RIGHTS, true);
    cv.setInt32(16, pass ?? -1, true);
    // struct msghdr { name, namelen(+pad), iov, iovlen, control, controllen, flags(+pad) }
    const msg = new Uint8Array(56);
    const mv = new DataView(msg.buffer);
    mv.setBigUint64(16, this.#ffi.addressOf(iov), true);
    mv.setBigUint64(24, 1n, true);
    if (pass !== undefined) {
      mv.setBigUint64(32, this.#ffi.addressOf(control), true);
      mv.setBigUint64(40, 24n, true);
    }
    const sent = this.#lib.fns.sendmsg!(fd, msg, MSG_NOSIGNAL) as number;
    return sent === bytes.length;
  }

  close(fd: number): void {
    this.#lib.fns.close!(fd);
  }
}
