/**
 * The CPU path of the tree digest: bytes copied out of (device) memory window by window into
 * shared buffers, each window's leaves hashed across worker threads, one subtree root per 4 MiB
 * task, the roots combined at the end. While workers hash one window the next is being copied.
 * A flat SHA-256 cannot use more than one core; this tree scales with them.
 */
import { startWorker, workerPlaces } from "../util/worker.ts";
import { combineLevels, LEAF_BYTES, leafHash, subtreeRoot } from "./tree.ts";

/** Leaves per worker task: a power of two, so every task but the last is a whole subtree. */
export const TASK_BYTES = 64 * LEAF_BYTES;
/** Tasks per thread in one copy window: enough to keep each worker busy while the next window is copied. */
const TASKS_PER_THREAD = 4;

interface Pending {
  resolve(roots: Uint8Array): void;
  reject(error: Error): void;
}

/** Worker threads that hash runs of leaves; with no threads it hashes on the calling thread. */
export class TreePool {
  readonly threads: number;
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #closed = false;
  /** True once #ready has settled: from then on work is posted without an await, so a digest's next copy overlaps the hashing. */
  #settled = false;
  /** Settles once every worker has loaded, failed, or been silent for WORKER_READY_MS. */
  #ready: Promise<boolean> = Promise.resolve(false);
  /** Two copy windows, allocated once (page faults and zeroing are paid once, not per digest). */
  #windows: Uint8Array[] = [];
  /** Digests run one at a time: they share the windows, and the workers are busy anyway. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(threads: number) {
    this.threads = threads;
  }

  /**
   * A pool of `threads` workers (0: hash inline). Worker start-up failures (a runtime or a
   * compiled binary without the worker module) leave the pool inline rather than broken.
   */
  static create(threads: number): TreePool {
    const pool = new TreePool(threads);
    const started: Promise<boolean>[] = [];
    for (let i = 0; i < threads; i++) started.push(pool.#start());
    pool.#ready = Promise.all(started).then((all) => {
      pool.#settled = true;
      return all.some(Boolean);
    });
    return pool;
  }

  /** Starts one worker (src/util/worker.ts finds its module); false when none loads or the pool closed meanwhile. */
  async #start(): Promise<boolean> {
    const w = await startWorker(workerPlaces(import.meta.url, "vram", "tree-worker.ts"));
    if (w === null) return false;
    if (this.#closed) return (w.terminate(), false);
    w.onmessage = (e: MessageEvent) => this.#settle(e.data as { id: number; roots?: Uint8Array; error?: string });
    w.onerror = (e: Event) => {
      w.terminate();
      this.#failAll(new Error(`Cannot hash on a worker thread: ${(e as ErrorEvent).message ?? "it failed"}`));
    };
    this.#workers.push(w);
    return true;
  }

  /** Worker threads that loaded and answer (0: the pool hashes on the calling thread). */
  async liveWorkers(): Promise<number> {
    await this.#ready;
    return this.#workers.length;
  }

  /** Subtree roots of `data`, one per TASK_BYTES, in order. `data` must sit in a SharedArrayBuffer to go to workers. */
  async roots(data: Uint8Array): Promise<Uint8Array[]> {
    const tasks = Math.ceil(data.length / TASK_BYTES);
    // Workers that never loaded (a build without the worker module, say) are simply not there:
    // with none, the leaves are hashed on this thread.
    if (!this.#settled) await this.#ready;
    if (this.#workers.length === 0 || !(data.buffer instanceof SharedArrayBuffer) || tasks === 1) {
      const out: Uint8Array[] = [];
      for (let t = 0; t < tasks; t++) out.push(subtreeRoot(data.subarray(t * TASK_BYTES, (t + 1) * TASK_BYTES)));
      return out;
    }
    const done = await this.#spread(data, TASK_BYTES, tasks, false);
    if (done === null) return this.roots(data);
    const out: Uint8Array[] = [];
    for (const roots of done) for (let i = 0; i < roots.length; i += 32) out.push(roots.subarray(i, i + 32));
    return out;
  }

  /**
   * Hands `data`, `count` units of `unit` bytes, to the workers in equal runs and returns what
   * each sent back, in order; null when a worker failed (a build without the worker module, or
   * one that died): the workers are then stopped and the caller hashes here.
   */
  async #spread(data: Uint8Array, unit: number, count: number, leaves: boolean): Promise<Uint8Array[] | null> {
    const per = Math.ceil(count / this.#workers.length);
    const parts: Promise<Uint8Array>[] = [];
    for (let w = 0, u = 0; u < count; w++, u += per) {
      const start = u * unit;
      const end = Math.min(data.length, (u + per) * unit);
      parts.push(this.#send(this.#workers[w]!, data.buffer as SharedArrayBuffer, data.byteOffset + start, end - start, leaves));
    }
    try {
      return await Promise.all(parts);
    } catch {
      for (const w of this.#workers) w.terminate();
      this.#workers.length = 0;
      return null;
    }
  }

  /**
   * Every leaf hash of `data` (32 bytes each, concatenated), split across the workers by leaf.
   * `data` must start on a leaf boundary of the shard and sit in a SharedArrayBuffer to go to workers.
   */
  async leaves(data: Uint8Array): Promise<Uint8Array> {
    if (!this.#settled) await this.#ready;
    const n = Math.ceil(data.length / LEAF_BYTES);
    if (this.#workers.length === 0 || !(data.buffer instanceof SharedArrayBuffer) || n < 2) {
      const out = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) out.set(leafHash(data.subarray(i * LEAF_BYTES, (i + 1) * LEAF_BYTES)), i * 32);
      return out;
    }
    const done = await this.#spread(data, LEAF_BYTES, n, true);
    if (done === null) return this.leaves(data);
    const out = new Uint8Array(n * 32);
    let o = 0;
    for (const p of done) out.set(p, o), (o += p.length);
    return out;
  }

  /**
   * The tree digest of `length` bytes that `read(offset, dst)` copies out, window by window,
   * copying the next window while the workers hash the current one.
   */
  async digest(length: number, read: (offset: number, dst: Uint8Array) => void): Promise<Uint8Array> {
    if (length < 1) throw new RangeError("Cannot digest an empty shard: a shard holds at least one byte");
    const run = this.#queue.then(() => this.#digest(length, read));
    this.#queue = run.catch(() => {});
    return await run;
  }

  /** Bytes per copy window: a whole number of tasks, a few per thread. */
  get windowBytes(): number {
    return Math.max(2, this.threads) * TASKS_PER_THREAD * TASK_BYTES;
  }

  async #digest(length: number, read: (offset: number, dst: Uint8Array) => void): Promise<Uint8Array> {
    if (!this.#settled) await this.#ready;
    const size = this.windowBytes;
    const need = length > size ? 2 : 1;
    while (this.#windows.length < need) this.#windows.push(new Uint8Array(new SharedArrayBuffer(size)));
    const windows = this.#windows;
    const roots: Uint8Array[] = [];
    let off = 0;
    let k = 0;
    let n = Math.min(size, length);
    read(0, windows[0]!.subarray(0, n));
    while (off < length) {
      const hashing = this.roots(windows[k % need]!.subarray(0, n));
      const nextOff = off + n;
      const nextN = Math.min(size, length - nextOff);
      if (nextN > 0) read(nextOff, windows[(k + 1) % need]!.subarray(0, nextN));
      roots.push(...await hashing);
      off = nextOff;
      n = nextN;
      k++;
    }
    return combineLevels(roots);
  }

  close(): void {
    this.#closed = true;
    this.#windows = [];
    for (const w of this.#workers) w.terminate();
    this.#workers.length = 0;
    this.#failAll(new Error("Cannot finish hashing: the tree pool was closed"));
  }

  #send(worker: Worker, buffer: SharedArrayBuffer, offset: number, length: number, leaves = false): Promise<Uint8Array> {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, buffer, offset, length, taskBytes: TASK_BYTES, leaves });
    });
  }

  #settle(msg: { id: number; roots?: Uint8Array; error?: string }): void {
    const p = this.#pending.get(msg.id);
    if (p === undefined) return;
    this.#pending.delete(msg.id);
    if (msg.roots !== undefined) p.resolve(msg.roots);
    else p.reject(new Error(`Cannot hash on a worker thread: ${msg.error}`));
  }

  #failAll(error: Error): void {
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}
