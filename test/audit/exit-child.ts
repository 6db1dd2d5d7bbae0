/**
 * A process that makes 500 changes and exits in the same turn (process.exit, or an uncaught
 * error with `throw` as its second argument), before its trail (on a worker) has been handed
 * them: the exit must still leave all 500 in the trail. Run by threaded.test.ts with the trail's
 * folder as its first argument.
 */
import process from "node:process";
import { ThreadedTrail } from "../../src/audit/threaded.ts";
import { ChangeRecord } from "../../src/changes/record.ts";
import { systemClock } from "../../src/util/clock.ts";
import { memoryLogger } from "../helpers.ts";

const { log } = memoryLogger();
const trail = await ThreadedTrail.start({ dir: process.argv[2]!, log, fileBytes: 1 << 20, maxFiles: 4, fsync: "batch" });
if (!(trail instanceof ThreadedTrail)) throw new Error("the trail's worker did not start");
const record = new ChangeRecord({ clock: systemClock, log, keep: 16, firstId: trail.lastId + 1 });
record.on((c) => trail.append(c));
for (let i = 0; i < 500; i++) record.append({ type: "lease.granted", lease_id: `lease-${i}`, data: { mem_mb: i } });
// Either an exit called in the middle of things, or a crash: an error nobody catches.
if (process.argv[3] === "throw") throw new Error("the child fails before the end of its turn");
process.exit(3);
