/**
 * The trail's worker on a slow disk: 30 ms per batch. Started by test/audit/threaded.test.ts in
 * place of src/audit/trail-worker.ts to show that what waits for it stays bounded.
 */
import "../../src/audit/trail-worker.ts";
import type { ToWorker } from "../../src/audit/trail-protocol.ts";

const scope = globalThis as unknown as { onmessage: ((e: { data: ToWorker }) => void) | null };
const real = scope.onmessage!;
const nap = new Int32Array(new SharedArrayBuffer(4));
scope.onmessage = (e) => {
  if ("lines" in e.data) Atomics.wait(nap, 0, 0, 30);
  real(e);
};
