/**
 * The Queen's telemetry ingest as the mock console serves it (docs/protocol.md#10-queen-telemetry):
 * `/queen/telemetry/<device>/ctl` hands out segments, `seg/<id>` takes envelopes in `seq`
 * order, `latest` names the newest segment; per-device quotas refuse or evict the oldest.
 * A repeated `seq` is acknowledged and not appended again, so a chunk resent after a crash
 * between the Queen's ack and the bridge's record of it is not duplicated.
 */
import { byteLength } from "../../src/util/bytes.ts";

export const MIMES = ["text/plain", "application/json", "application/x-ndjson"];

export interface QueenQuota {
  maxSegments: number;
  segmentBytes: number;
  totalBytes: number;
  policy: "refuse" | "evict-oldest";
}

interface QueenSegment {
  readonly id: string;
  readonly mime: string;
  lastSeq: number;
  bytes: number;
  readonly payloads: string[];
}

interface Device {
  counter: number;
  segments: QueenSegment[];
}

const PATH = /^\/queen\/telemetry\/([^/]{1,64})\/(ctl|latest|seg\/(seg-\d{6}))$/;

export class QueenTelemetry {
  quota: QueenQuota = { maxSegments: 64, segmentBytes: 1 << 20, totalBytes: 16 << 20, policy: "refuse" };
  readonly devices = new Map<string, Device>();
  /** Envelopes that arrived twice (acknowledged, not appended). */
  duplicates = 0;
  /** Whether the ack of a new segment names it (`seg_id=`); a Queen may leave that to `latest`. */
  ackSegId = true;

  /** Whether `path` is a Queen telemetry path. */
  handles(path: string): boolean {
    return path.startsWith("/queen/telemetry/");
  }

  /** Handles one ECHO; returns the ack line. */
  echo(path: string, payload: string): string {
    const m = PATH.exec(path);
    if (m === null || m[2] === "latest") return `ERR ECHO reason=not-found path=${path}`;
    const dev = this.#device(m[1]!);
    const bytes = byteLength(payload);
    if (m[2] === "ctl") return this.#newSegment(dev, path, payload, bytes);
    const seg = dev.segments.find((s) => s.id === m[3]);
    if (seg === undefined) return `ERR ECHO reason=not-found path=${path} detail=no-such-segment`;
    let env: { schema?: unknown; seq?: unknown; mime?: unknown; payload?: unknown };
    try {
      env = JSON.parse(payload);
    } catch {
      return `ERR ECHO reason=invalid path=${path} detail=not-json`;
    }
    if (
      env.schema !== "cohsh-telemetry-push/v1" || typeof env.seq !== "number" || typeof env.payload !== "string" || env.mime !== seg.mime
    ) {
      return `ERR ECHO reason=invalid path=${path} detail=bad-envelope`;
    }
    if (env.seq <= seg.lastSeq) {
      this.duplicates++;
      return `OK ECHO path=${path} bytes=${bytes} seq=${env.seq} duplicate=1`;
    }
    if (env.seq !== seg.lastSeq + 1) return `ERR ECHO reason=invalid path=${path} detail=seq-gap expected=${seg.lastSeq + 1}`;
    const size = byteLength(env.payload);
    if (seg.bytes + size > this.quota.segmentBytes) return `ERR ECHO reason=quota path=${path} detail=segment-full`;
    if (this.#total(dev) + size > this.quota.totalBytes) {
      if (this.quota.policy === "refuse" || dev.segments.length <= 1) return `ERR ECHO reason=quota path=${path} detail=device-full`;
      dev.segments.shift();
    }
    seg.payloads.push(env.payload);
    seg.lastSeq = env.seq;
    seg.bytes += size;
    return `OK ECHO path=${path} bytes=${bytes} seq=${env.seq}`;
  }

  /** `CAT /queen/telemetry/<device>/latest`: the newest segment id, if any. */
  latest(path: string): string | undefined {
    const m = PATH.exec(path);
    if (m === null || m[2] !== "latest") return undefined;
    return this.devices.get(m[1]!)?.segments.at(-1)?.id;
  }

  /** Everything a device delivered, reassembled: the concatenated payloads of its segments. */
  delivered(device: string): string {
    return (this.devices.get(device)?.segments ?? []).map((s) => s.payloads.join("")).join("");
  }

  #newSegment(dev: Device, path: string, payload: string, bytes: number): string {
    let req: { new?: unknown; mime?: unknown };
    try {
      req = JSON.parse(payload);
    } catch {
      return `ERR ECHO reason=invalid path=${path} detail=not-json`;
    }
    if (req.new !== "segment" || typeof req.mime !== "string" || !MIMES.includes(req.mime)) {
      return `ERR ECHO reason=invalid path=${path} detail=bad-request`;
    }
    if (dev.segments.length >= this.quota.maxSegments) {
      if (this.quota.policy === "refuse") return `ERR ECHO reason=quota path=${path} detail=too-many-segments`;
      dev.segments.shift();
    }
    const id = `seg-${String(++dev.counter).padStart(6, "0")}`;
    dev.segments.push({ id, mime: req.mime, lastSeq: 0, bytes: 0, payloads: [] });
    return `OK ECHO path=${path} bytes=${bytes}${this.ackSegId ? ` seg_id=${id}` : ""}`;
  }

  #device(id: string): Device {
    let d = this.devices.get(id);
    if (d === undefined) this.devices.set(id, d = { counter: 0, segments: [] });
    return d;
  }

  #total(dev: Device): number {
    return dev.segments.reduce((n, s) => n + s.bytes, 0);
  }
}
