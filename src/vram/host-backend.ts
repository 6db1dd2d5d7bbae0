/**
 * Host memory standing in for VRAM (--mock): each "device" has the inventory's memory size, and
 * the tree is computed by the CPU path. Where libc offers `memfd_create` (Linux), each allocation
 * is an anonymous shared-memory file, so another process can map it the way it would map
 * exported VRAM (the fake libcuda imports it: docs/vram-sharing.md); elsewhere a
 * SharedArrayBuffer, which says it cannot be shared. Either way a sealed gigabyte costs a
 * gigabyte. There is no driver, so no pointer evidence: attestations say so.
 */
import { closeSync, ftruncateSync, readSync, writeSync } from "node:fs";
import { type DeviceEvidence, VramAllocError, type VramBackend, type VramBuffer } from "./backend.ts";
import type { TreePool } from "./tree-pool.ts";

/** The allocation granularity an importer maps in (the fake libcuda's, and current GPUs'). */
export const SHARE_GRANULARITY = 2 * 1024 * 1024;

/** What the host backend needs from libc to make shareable memory (ffi/unix-share.ts). */
export interface MemfdMaker {
  memfd(name: string): number;
}

class HostBuffer implements VramBuffer {
  readonly ordinal: number;
  readonly bytes: number;
  readonly shareRefusal: string | null;
  readonly mappedBytes: number;
  /** The memfd holding the bytes, or the array; both null once freed. */
  fd: number | null = null;
  data: Uint8Array | null = null;
  constructor(ordinal: number, bytes: number, memfd: MemfdMaker | null, why: string) {
    this.ordinal = ordinal;
    this.bytes = bytes;
    this.mappedBytes = Math.ceil(bytes / SHARE_GRANULARITY) * SHARE_GRANULARITY;
    if (memfd === null) {
      this.data = new Uint8Array(new SharedArrayBuffer(bytes));
      this.shareRefusal = why;
      return;
    }
    this.fd = memfd.memfd("gpu-bridge-shard");
    try {
      ftruncateSync(this.fd, this.mappedBytes);
    } catch (error) {
      closeSync(this.fd);
      throw error;
    }
    this.shareRefusal = null;
  }
  get freed(): boolean {
    return this.fd === null && this.data === null;
  }
}

export class HostMemoryVram implements VramBackend {
  readonly kind = "host-memory" as const;
  readonly note = "mock mode: host memory stands in for VRAM; nothing here is on a GPU";
  readonly #totals: (ordinal: number) => number;
  readonly #pool: TreePool;
  readonly #memfd: MemfdMaker | null;
  readonly #noMemfd: string;
  readonly #used = new Map<number, number>();

  /**
   * `totals(ordinal)`: the bytes the mock GPU claims to have. `memfd`: where shareable memory
   * comes from; null (with `why`) leaves allocations unshareable.
   */
  constructor(totals: (ordinal: number) => number, pool: TreePool, memfd: MemfdMaker | null = null, why = "memfd_create is unavailable") {
    this.#totals = totals;
    this.#pool = pool;
    this.#memfd = memfd;
    this.#noMemfd = `mock mode without shared memory: ${why}`;
  }

  memInfo(ordinal: number): { free: number; total: number } {
    const total = this.#totals(ordinal);
    return { total, free: Math.max(0, total - (this.#used.get(ordinal) ?? 0)) };
  }

  alloc(ordinal: number, bytes: number): VramBuffer {
    if (!Number.isSafeInteger(bytes) || bytes < 1) throw new RangeError(`Cannot allocate ${bytes} bytes`);
    const { free } = this.memInfo(ordinal);
    if (bytes > free) throw new VramAllocError(`out of (mock) device memory: ${bytes} bytes asked, ${free} free`, true);
    let buf: HostBuffer;
    try {
      buf = new HostBuffer(ordinal, bytes, this.#memfd, this.#noMemfd);
    } catch (error) {
      throw new VramAllocError(`host memory refused ${bytes} bytes: ${(error as Error).message}`, true, error);
    }
    this.#used.set(ordinal, (this.#used.get(ordinal) ?? 0) + bytes);
    return buf;
  }

  free(buf: VramBuffer): void {
    const b = buf as HostBuffer;
    if (b.freed) return;
    if (b.fd !== null) closeSync(b.fd); // an importer's mapping keeps the pages until it unmaps
    b.fd = null;
    b.data = null;
    this.#used.set(b.ordinal, (this.#used.get(b.ordinal) ?? 0) - b.bytes);
  }

  write(buf: VramBuffer, offset: number, src: Uint8Array): void {
    const b = this.#range(buf, offset, src.length);
    if (b.data !== null) b.data.set(src, offset);
    else writeAll(b.fd!, src, offset);
  }

  read(buf: VramBuffer, offset: number, dst: Uint8Array): void {
    const b = this.#range(buf, offset, dst.length);
    if (b.data !== null) dst.set(b.data.subarray(offset, offset + dst.length));
    else for (let done = 0; done < dst.length;) done += readSync(b.fd!, dst, done, dst.length - done, offset + done) || fail(offset + done);
  }

  memset(buf: VramBuffer, offset: number, value: number, count: number): void {
    this.write(buf, offset, new Uint8Array(count).fill(value & 0xff));
  }

  async treeDigest(buf: VramBuffer, length: number): Promise<{ digest: Uint8Array; path: "cpu" }> {
    this.#range(buf, 0, length);
    return { digest: await this.#pool.digest(length, (off, dst) => this.read(buf, off, dst)), path: "cpu" };
  }

  pointerEvidence(): null {
    return null;
  }

  deviceEvidence(): DeviceEvidence {
    return { integrated: false, attributes: {} };
  }

  exportFd(buf: VramBuffer): { fd: number; owned: boolean } {
    const b = this.#range(buf, 0, 0);
    if (b.fd === null) throw new RangeError(`Cannot export this buffer: ${b.shareRefusal}`);
    return { fd: b.fd, owned: false };
  }

  close(): void {}

  #range(buf: VramBuffer, offset: number, length: number): HostBuffer {
    const b = buf as HostBuffer;
    if (b.freed) throw new RangeError("Cannot use a device buffer that was freed");
    if (offset < 0 || length < 0 || offset + length > buf.bytes) {
      throw new RangeError(`Cannot reach bytes ${offset}..${offset + length} of a ${buf.bytes}-byte device buffer`);
    }
    return b;
  }
}

function writeAll(fd: number, src: Uint8Array, offset: number): void {
  for (let done = 0; done < src.length;) done += writeSync(fd, src, done, src.length - done, offset + done);
}

const fail = (at: number): never => {
  throw new RangeError(`Cannot read shared memory at byte ${at}: it ended early`);
};
