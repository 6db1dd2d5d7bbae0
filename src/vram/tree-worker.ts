/**
 * A tree worker: hashes aligned runs of leaves of a shared buffer and answers with one subtree
 * root per task. Started by TreePool; speaks only postMessage.
 */
import { LEAF_BYTES, leafHash, subtreeRoot } from "./tree.ts";

interface Job {
  readonly id: number;
  readonly buffer: SharedArrayBuffer;
  readonly offset: number;
  readonly length: number;
  readonly taskBytes: number;
  /** `leaves`: answer every leaf hash instead of one root per task. */
  readonly leaves?: boolean;
}

const scope = globalThis as unknown as {
  onmessage: ((e: { data: Job }) => void) | null;
  postMessage(message: unknown, transfer?: unknown[]): void;
};

scope.postMessage({ ready: true });

scope.onmessage = (e) => {
  const { id, buffer, offset, length, taskBytes } = e.data;
  try {
    const data = new Uint8Array(buffer, offset, length);
    if (e.data.leaves) {
      const n = Math.ceil(length / LEAF_BYTES);
      const hashes = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) hashes.set(leafHash(data.subarray(i * LEAF_BYTES, (i + 1) * LEAF_BYTES)), i * 32);
      scope.postMessage({ id, roots: hashes }, [hashes.buffer]);
      return;
    }
    const tasks = Math.ceil(length / taskBytes);
    const roots = new Uint8Array(tasks * 32);
    for (let t = 0; t < tasks; t++) roots.set(subtreeRoot(data.subarray(t * taskBytes, (t + 1) * taskBytes)), t * 32);
    scope.postMessage({ id, roots }, [roots.buffer]);
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};
