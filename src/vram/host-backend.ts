/**
 * Host memory standing in for VRAM (--mock): each "device" has the inventory's memory size,
 * allocations are real SharedArrayBuffers (so a sealed gigabyte costs a gigabyte), and the tree
 * is computed by the CPU path. There is no driver, so no pointer evidence: attestations say so.
 */
import { type DeviceEvidence, VramAllocError, type VramBackend, type VramBuffer } from "./backend.ts";
import type { TreePool } from "./tree-pool.ts";

class HostBuffer implements VramBuffer {
  readonly ordinal: number;
  readonly bytes: number;
  data: Uint8Array | null;
  constructor(ordinal: number, bytes: number) {
    this.ordinal = ordinal;
    this.bytes = bytes;
    this.data = new Uint8Array(new SharedArrayBuffer(bytes));
  }
}

export class HostMemoryVram implements VramBackend {
  readonly kind = "host-memory" as const;
  readonly note = "mock mode: host memory stands in for VRAM; nothing here is on a GPU";
  readonly #totals: (ordinal: number) => number;
  readonly #pool: TreePool;
  readonly #used = new Map<number, number>();

  /** `totals(ordinal)`: the bytes the mock GPU claims to have. */
  constructor(totals: (ordinal: number) => number, pool: TreePool) {
    this.#totals = totals;
    this.#pool = pool;
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
      buf = new HostBuffer(ordinal, bytes);
    } catch (error) {
      throw new VramAllocError(`host memory refused ${bytes} bytes: ${(error as Error).message}`, true, error);
    }
    this.#used.set(ordinal, (this.#used.get(ordinal) ?? 0) + bytes);
    return buf;
  }

  free(buf: VramBuffer): void {
    const b = buf as HostBuffer;
    if (b.data === null) return;
    b.data = null;
    this.#used.set(b.ordinal, (this.#used.get(b.ordinal) ?? 0) - b.bytes);
  }

  write(buf: VramBuffer, offset: number, src: Uint8Array): void {
    this.#range(buf, offset, src.length).set(src);
  }

  read(buf: VramBuffer, offset: number, dst: Uint8Array): void {
    dst.set(this.#range(buf, offset, dst.length));
  }

  memset(buf: VramBuffer, offset: number, value: number, count: number): void {
    this.#range(buf, offset, count).fill(value & 0xff);
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

  close(): void {}

  #range(buf: VramBuffer, offset: number, length: number): Uint8Array {
    const data = (buf as HostBuffer).data;
    if (data === null) throw new RangeError("Cannot use a device buffer that was freed");
    if (offset < 0 || length < 0 || offset + length > buf.bytes) {
      throw new RangeError(`Cannot reach bytes ${offset}..${offset + length} of a ${buf.bytes}-byte device buffer`);
    }
    return data.subarray(offset, offset + length);
  }
}
