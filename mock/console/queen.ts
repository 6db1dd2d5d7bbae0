/**
 * The Queen's telemetry ingest as the mock console serves it, modelled on the Cohesix root task
 * (docs/protocol.md#10-queen-telemetry): `/queen/telemetry/<device>/ctl` opens a segment (the ack
 * does not name it: `latest` does), `seg/<id>` appends whatever line it is sent (newline added,
 * 4096 bytes at most, no envelope check, no seq check, no duplicate detection: a chunk sent
 * twice is stored twice), per-device quotas refuse with `buffer-full` or evict the oldest
 * segments, only the queen writes, `latest` is read-only, and one `CAT` answers 64 lines at most.
 */
import { byteLength } from "../../src/util/bytes.ts";
import { catProblem, envelopeRun, type IngestQuota, QUEEN } from "../../src/contract/queen.ts";
import type { Role } from "./vm.ts";

export interface QueenSegment {
  readonly id: string;
  /** The lines appended, in order (each stored with a newline; kept here without). */
  readonly lines: string[];
  bytes: number;
}

interface Device {
  nextId: number;
  total: number;
  latest: string | null;
  segments: QueenSegment[];
}

const TAKEN_CHARS = 8 << 20;
const PATH = /^\/queen\/telemetry\/([^/]+)\/(ctl|latest|seg\/([^/]+))$/;
const DEVICE = /^\/queen\/telemetry\/([^/]+)(\/seg)?$/;

/** The console's refusals of a Queen path, in the root task's words. */
export function refusal(verb: string, path: string, kind: "invalid-path" | "denied" | "buffer-full"): string {
  if (kind === "buffer-full") return `ERR ${verb} reason=quota detail=buffer-full path=${path} error=buffer full`;
  return `ERR ${verb} reason=policy detail=${kind} path=${path} error=${kind === "denied" ? "EPERM" : "invalid path"}`;
}

/** A CAT's reply: the ack (summary: the last line, cut to fit 128 bytes), the lines, END; or the refusal. */
export function catReply(path: string, lines: readonly string[]): string[] {
  if (catProblem(lines) !== null) return [refusal("CAT", path, "buffer-full")];
  const head = `OK CAT path=${path} data=`;
  const last = lines.at(-1) ?? "";
  return [head + last.slice(0, Math.max(0, 128 - byteLength(head))), ...lines, "END"];
}

export class QueenTelemetry {
  quota: IngestQuota = { ...QUEEN.ingest };
  readonly devices = new Map<string, Device>();
  /** Whether the ack of a new segment names it (`seg_id=`): the root task's does not; `latest` does. */
  ackSegId = false;
  /**
   * The Queen's own reader: each complete line of an envelope run, as it arrives, with its
   * segment's mime (queen-export.ts collects the records from here).
   */
  onLine: (device: string, mime: string, text: string) => void = () => {};
  #streams = new Map<string, { next: number; partial: string; broken: boolean; mime: string }>();
  #taken = new Map<string, string>();

  /** Whether `path` is under `/queen/telemetry`. */
  handles(path: string): boolean {
    return path === QUEEN.telemetryRoot || path.startsWith(QUEEN.telemetryRoot + "/");
  }

  /** Whether ingest is on: every quota above zero. */
  get enabled(): boolean {
    return this.quota.maxSegments > 0 && this.quota.segmentBytes > 0 && this.quota.totalBytes > 0;
  }

  /** Handles one ECHO from a session attached as `role`; returns the ack line. */
  echo(path: string, payload: string, role: Role | null): string {
    const m = PATH.exec(path);
    if (m === null || !this.enabled) return refusal("ECHO", path, "invalid-path");
    if (m[2] === "latest") return refusal("ECHO", path, "denied");
    if (role !== "queen") return refusal("ECHO", path, "denied");
    const ok = `OK ECHO path=${path} bytes=${byteLength(payload)}`;
    if (m[2] === "ctl") {
      // The root task looks for a "new" string field and wants "segment"; the mime is not checked.
      if (/"new"\s*:\s*"([^"]*)"/.exec(payload)?.[1] !== "segment") {
        return `ERR ECHO reason=policy detail=invalid-payload path=${path} error=invalid payload`;
      }
      const id = this.#newSegment(m[1]!);
      if (id === null) return refusal("ECHO", path, "buffer-full");
      return this.ackSegId ? `${ok} seg_id=${id}` : ok;
    }
    const outcome = this.#append(m[1]!, m[3]!, payload);
    return outcome === "ok" ? ok : refusal("ECHO", path, outcome);
  }

  /** `CAT` of `latest` (the newest segment id, or nothing) or of a segment (its lines). */
  cat(path: string): string[] {
    const m = PATH.exec(path);
    const dev = m === null ? undefined : this.devices.get(m[1]!);
    if (m === null || dev === undefined || !this.enabled || m[2] === "ctl") return [refusal("CAT", path, "invalid-path")];
    if (m[2] === "latest") return catReply(path, dev.latest === null ? [] : [dev.latest]);
    const seg = dev.segments.find((s) => s.id === m[3]);
    return seg === undefined ? [refusal("CAT", path, "invalid-path")] : catReply(path, seg.lines);
  }

  /** `LS` of `/queen/telemetry`, a device or its `seg`: the names, or null for a missing path. */
  ls(path: string): string[] | null {
    if (!this.enabled) return null;
    if (path === QUEEN.telemetryRoot) return [...this.devices.keys()].sort();
    const m = DEVICE.exec(path);
    const dev = m === null ? undefined : this.devices.get(m[1]!);
    if (dev === undefined) return null;
    return m![2] === undefined ? ["ctl", "seg", "latest"] : dev.segments.map((s) => s.id);
  }

  /**
   * What the Queen's reader took from a device, in arrival order: the complete lines of each
   * segment's envelope run (the newest 8 MiB). A segment's partial last record is not taken, and
   * nothing past a break in its run is.
   */
  delivered(device: string): string {
    return this.#taken.get(device) ?? "";
  }

  /** Follows one stored line: continues its segment's run, or ends the run for good. */
  #follow(device: string, segment: string, line: string): void {
    const key = `${device}/${segment}`;
    let s = this.#streams.get(key);
    if (s === undefined) this.#streams.set(key, s = { next: 1, partial: "", broken: false, mime: "" });
    if (s.broken) return;
    const run = envelopeRun([line], s.next);
    if (run.count === 0) {
      s.broken = true;
      return;
    }
    if (s.next === 1) s.mime = run.mimes[0]!;
    s.next++;
    const lines = (s.partial + run.payloads[0]!).split("\n");
    s.partial = lines.pop()!;
    for (const text of lines) {
      let taken = (this.#taken.get(device) ?? "") + text + "\n";
      if (taken.length > TAKEN_CHARS) taken = taken.slice(taken.indexOf("\n", taken.length - TAKEN_CHARS / 2) + 1);
      this.#taken.set(device, taken);
      this.onLine(device, s.mime, text);
    }
  }

  #newSegment(device: string): string | null {
    let dev = this.devices.get(device);
    if (dev === undefined) this.devices.set(device, dev = { nextId: 1, total: 0, latest: null, segments: [] });
    if (dev.segments.length + 1 > this.quota.maxSegments) {
      if (this.quota.policy === "refuse") return null;
      while (dev.segments.length + 1 > this.quota.maxSegments) dev.total -= dev.segments.shift()!.bytes;
    }
    const id = `seg-${String(dev.nextId++).padStart(6, "0")}`;
    dev.segments.push({ id, lines: [], bytes: 0 });
    dev.latest = id;
    return id;
  }

  /** The root task's append: sizes with the newline, the segment cap, then the device's total. */
  #append(device: string, segId: string, payload: string): "ok" | "invalid-path" | "buffer-full" {
    const size = byteLength(payload) + (payload.endsWith("\n") ? 0 : 1);
    if (size > QUEEN.recordBytes) return "buffer-full";
    const dev = this.devices.get(device);
    const seg = dev?.segments.find((s) => s.id === segId);
    if (dev === undefined || seg === undefined) return "invalid-path";
    if (seg.bytes + size > this.quota.segmentBytes) return "buffer-full";
    const over = dev.total + size - this.quota.totalBytes;
    if (over > 0) {
      if (this.quota.policy === "refuse") return "buffer-full";
      // Evicts the oldest other segments until the line fits; what it evicted stays evicted
      // even when that is not enough.
      let freed = 0;
      for (let i = 0; freed < over && i < dev.segments.length;) {
        if (dev.segments[i] === seg) {
          i++;
          continue;
        }
        const [gone] = dev.segments.splice(i, 1);
        dev.total -= gone!.bytes;
        freed += gone!.bytes;
        if (dev.latest === gone!.id) dev.latest = dev.segments.at(-1)?.id ?? null;
      }
      if (freed < over) return "buffer-full";
    }
    const line = payload.endsWith("\n") ? payload.slice(0, -1) : payload;
    seg.lines.push(line);
    seg.bytes += size;
    dev.total += size;
    this.#follow(device, segId, line);
    return "ok";
  }
}
