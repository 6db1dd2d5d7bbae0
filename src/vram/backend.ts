/**
 * Where shard bytes live: the GPU's memory through the CUDA driver, or (with --mock) host memory
 * standing in for it, which every answer names. Both give the same operations, so the shard
 * store, the API and the tests are the same for both.
 */
import type { PointerEvidence } from "../../ffi/cuda-vram.ts";

/** An allocation; the backend alone knows where it is. */
export interface VramBuffer {
  readonly ordinal: number;
  readonly bytes: number;
  /** Why another process cannot map it; null when it can (see `exportFd`). */
  readonly shareRefusal: string | null;
  /** What an importer maps: `bytes` rounded up to the allocation granularity. */
  readonly mappedBytes: number;
}

/** The per-device facts an attestation records. */
export interface DeviceEvidence {
  readonly integrated: boolean;
  readonly attributes: Readonly<Record<string, number>>;
}

export interface VramBackend {
  /** `cuda`, or `host-memory` when --mock makes host memory stand in for VRAM. */
  readonly kind: "cuda" | "host-memory";
  /** What the kind means, for answers and logs. */
  readonly note: string;
  memInfo(ordinal: number): { free: number; total: number };
  alloc(ordinal: number, bytes: number): VramBuffer;
  free(buf: VramBuffer): void;
  write(buf: VramBuffer, offset: number, src: Uint8Array): void;
  read(buf: VramBuffer, offset: number, dst: Uint8Array): void;
  /** Sets `count` bytes at `offset` to `value` (cuMemsetD8_v2): how tests and gpu-check corrupt VRAM. */
  memset(buf: VramBuffer, offset: number, value: number, count: number): void;
  /** The tree digest of the buffer's first `length` bytes, on the path asked for. */
  treeDigest(buf: VramBuffer, length: number, path: "gpu" | "cpu"): Promise<{ digest: Uint8Array; path: "gpu" | "cpu" }>;
  /** What the driver says about the allocation; null where there is no driver (host memory). */
  pointerEvidence(buf: VramBuffer): PointerEvidence | null;
  deviceEvidence(ordinal: number): DeviceEvidence;
  /**
   * A file descriptor for a shareable buffer's memory, to pass to another process; `owned`: a new
   * one the caller closes once sent (else the backend's own, which it keeps).
   */
  exportFd(buf: VramBuffer): { fd: number; owned: boolean };
  close(): void;
}

/** An allocation the driver or the host refused. */
export class VramAllocError extends Error {
  override name = "VramAllocError";
  readonly outOfMemory: boolean;
  constructor(message: string, outOfMemory: boolean, cause?: unknown) {
    super(message, { cause });
    this.outOfMemory = outOfMemory;
  }
}
