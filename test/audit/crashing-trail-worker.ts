/**
 * The trail's worker, dying at its third batch after writing it but before saying so (its ACKED
 * slot set back): the bridge's thread must write what the worker had not confirmed, and nothing
 * twice. Started by test/audit/threaded.test.ts in place of src/audit/trail-worker.ts.
 */
import "../../src/audit/trail-worker.ts";
import { SLOT, type ToWorker } from "../../src/audit/trail-protocol.ts";

const scope = globalThis as unknown as { onmessage: ((e: { data: ToWorker }) => void) | null };
const real = scope.onmessage!;
let counters = new Int32Array(new SharedArrayBuffer(16));
let batches = 0;
scope.onmessage = (e) => {
  const m = e.data;
  if ("init" in m) counters = new Int32Array(m.init.counters);
  real(e);
  if ("lines" in m && ++batches === 3) {
    Atomics.store(counters, SLOT.acked, m.seq - 1);
    throw new Error("the test worker dies after writing its third batch");
  }
};
