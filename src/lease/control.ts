/**
 * Control lines (docs/protocol.md#7-leases-control-lines-and-jobs): `LEASE <worker> mem=<m> streams=<s> priority=<p>
 * [ttl=<s>]`, `RELEASE <worker> [reason]`, `PRIORITY <n> [worker=<w>]` and `RESET`, parsed
 * strictly: a typo is an error that names the field, never a silent default. `mem=`, `streams=`
 * and `ttl=` left out of a LEASE line take the lease policy's defaults (src/lease/policy.ts),
 * which `mem=` and `streams=` have only when the operator sets them.
 */
import { PRIORITY } from "../contract/limits.ts";
import { checkPriority } from "./ranges.ts";
import { LeaseError } from "./types.ts";

export type ControlCommand =
  | {
    readonly verb: "LEASE";
    readonly worker: string;
    /** Absent: the lease policy's default (src/lease/policy.ts), or refused when it has none. */
    readonly mem?: number;
    readonly streams?: number;
    readonly priority: number;
    readonly ttl?: number;
  }
  | { readonly verb: "RELEASE"; readonly worker: string; readonly reason: string }
  | { readonly verb: "PRIORITY"; readonly priority: number; readonly worker?: string }
  | { readonly verb: "RESET" };

/** Parses one control line or throws LeaseError (code `invalid`) saying what is wrong. */
export function parseControl(line: string): ControlCommand {
  const text = line.replace(/\r?\n$/, "");
  if (/[\r\n]/.test(text)) throw bad("a control line must be a single line");
  const [verb = "", ...args] = text.trim().split(/\s+/);
  switch (verb) {
    case "LEASE": {
      const [worker, ...rest] = args;
      if (worker === undefined || worker.includes("=")) {
        throw bad(`LEASE needs a worker id: LEASE <worker> mem=<MiB> streams=<n> priority=<${PRIORITY.min}-${PRIORITY.max}>`, "worker_id");
      }
      const kv = keyValues(rest, ["mem", "streams", "priority", "ttl"], "LEASE");
      if (kv.priority === undefined) throw bad("LEASE needs priority=<n>", "priority");
      // mem, streams and ttl left out are the lease policy's defaults, filled in by the host.
      return {
        verb,
        worker,
        priority: kv.priority,
        ...(kv.mem !== undefined && { mem: kv.mem }),
        ...(kv.streams !== undefined && { streams: kv.streams }),
        ...(kv.ttl !== undefined && { ttl: kv.ttl }),
      };
    }
    case "RELEASE": {
      const [worker, ...reason] = args;
      if (worker === undefined) throw bad("RELEASE needs a worker id: RELEASE <worker> [reason]", "worker_id");
      return { verb, worker, reason: reason.join(" ") || "released" };
    }
    case "PRIORITY": {
      const [n, ...rest] = args;
      // Digits only: Number() would take " 1", "0x10" or "1e2" too.
      const priority = n !== undefined && /^\d+$/.test(n) ? Number(n) : (n ?? "");
      checkPriority(priority);
      if (rest.length === 0) return { verb, priority };
      const m = rest.length === 1 ? /^worker=(.+)$/.exec(rest[0]!) : null;
      if (m === null) throw bad(`PRIORITY takes only worker=<id> after the number, got ${JSON.stringify(rest.join(" "))}`);
      return { verb, priority, worker: m[1]! };
    }
    case "RESET":
      if (args.length > 0) throw bad(`RESET takes no arguments, got ${JSON.stringify(args.join(" "))}`);
      return { verb };
    default:
      throw bad(`Unknown control verb ${JSON.stringify(verb)}: use LEASE, RELEASE, PRIORITY or RESET`, "verb");
  }
}

function keyValues(parts: string[], allowed: string[], verb: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of parts) {
    const m = /^([a-z_]+)=(.*)$/.exec(part);
    if (m === null || !allowed.includes(m[1]!)) {
      throw bad(`${verb} does not take ${JSON.stringify(part)}; fields are ${allowed.map((k) => `${k}=`).join(", ")}`);
    }
    if (!/^\d+$/.test(m[2]!)) throw bad(`${verb} ${m[1]} must be a non-negative integer, got ${JSON.stringify(m[2])}`, m[1]);
    if (Object.hasOwn(out, m[1]!)) throw bad(`${verb} names ${m[1]} twice`, m[1]);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

function bad(message: string, field?: string): LeaseError {
  return new LeaseError("invalid", message, field);
}
