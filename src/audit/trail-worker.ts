/**
 * The audit trail's worker: owns the trail's files and writes what the bridge's thread hands it
 * (threaded.ts), so serialising, hashing and writing the chain cost the bridge's thread nothing
 * but one JSON.stringify per batch. What it says and hears: trail-protocol.ts.
 */
import type { Change } from "../changes/record.ts";
import type { Logger } from "../util/log.ts";
import { AuditTrail } from "./trail.ts";
import { type FromWorker, type LogLevelName, SLOT, type ToWorker } from "./trail-protocol.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: { data: ToWorker }) => void) | null;
  postMessage(message: FromWorker): void;
};

const post = (m: FromWorker) => scope.postMessage(m);
const say = (level: LogLevelName) => (message: string) => post({ log: [level, message] });
/** The trail's lines go to the bridge's logger, which masks and formats them. */
const log: Logger = { debug: say("debug"), info: say("info"), warn: say("warn"), error: say("error"), child: () => log };

let trail: AuditTrail | null = null;
let counters: Int32Array<ArrayBufferLike> = new Int32Array(0);

/** What the bridge's thread reads without asking. */
function publish(): void {
  Atomics.store(counters, SLOT.failures, trail!.failures);
  Atomics.store(counters, SLOT.syncs, trail!.syncs);
  Atomics.store(counters, SLOT.failing, trail!.failing ? 1 : 0);
}

scope.onmessage = async (e) => {
  const m = e.data;
  if ("init" in m) {
    counters = new Int32Array(m.init.counters);
    trail = new AuditTrail({ ...m.init.options, log }, m.init.start);
  } else if ("lines" in m) {
    for (const change of JSON.parse(m.lines) as Change[]) trail!.append(change);
    trail!.writePending();
    publish();
    Atomics.store(counters, SLOT.acked, m.seq);
    Atomics.notify(counters, SLOT.acked);
  } else if ("written" in m) {
    post({ wrote: m.written }); // messages come in order: every batch before this one is written
  } else if ("flush" in m) {
    await trail!.flush();
    publish();
    post({ flushed: m.flush });
  } else {
    await trail!.close();
    publish();
    post({ closed: m.close });
  }
};

post({ ready: true });
