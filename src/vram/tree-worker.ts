/**
 * A tree worker: hashes aligned runs of leaves of a shared buffer and answers with one subtree
 * root per task. Started by TreePool; speaks only postMessage.
 */
import { subtreeRoot } from "./tree.ts";

interface Job {
  readonly id: number;
  readonly buffer: SharedArrayBuffer;
  readonly offset: number;
  readonly length: number;
  readonly taskBytes: number;
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
    const tasks = Math.ceil(length / taskBytes);
    const roots = new Uint8Array(tasks * 32);
    for (let t = 0; t < tasks; t++) roots.set(subtreeRoot(data.subarray(t * taskBytes, (t + 1) * taskBytes)), t * 32);
    scope.postMessage({ id, roots }, [roots.buffer]);
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};
