/**
 * Keeps the VM's node files true in both directions over the publisher's console session:
 * the bridge's own new lines go as single `ECHO` appends (one frame each, no window in which a
 * VM write can be lost), the VM's files are read back (`CAT`) before every full snapshot and on
 * an idle poll, and lines the VM's clients wrote are handed to the host and kept in every
 * republish. A refused append (a full VM log) compacts that file and republishes it.
 */
import { ConsoleError } from "../console/errors.ts";
import type { ConsoleSession } from "../console/session.ts";
import { ReadbackProbe } from "../console/readback.ts";
import { seedCtl } from "../contract/info.ts";
import type { Logger } from "../util/log.ts";
import type { Namespace, NodeLogs } from "../contract/namespace.ts";
import type { Snapshot } from "../contract/snapshot.ts";
import { byteLength } from "../util/bytes.ts";
import { sha256Hex } from "../util/sha256.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { LIMITS, VM_CAPS, type VmFile } from "../contract/limits.ts";
import { type MirrorToken, type PendingLine, SNAPSHOT_FILES, VmMirror } from "./mirror.ts";
import type { VmLinePlace } from "./applied.ts";
import type { MirrorPersistence } from "./store.ts";
/** A file published or compacted is kept at most at this share of its cap, the rest left to the VM's clients. */
const LOW_WATER = 0.5;
/** A file over this share of its cap is compacted before a snapshot carries it. */
const HIGH_WATER = 0.75;
/** Appends sent in one window batch. */
const APPEND_BATCH = 32;
/**
 * Builds of one snapshot when the read-back before its `end` keeps finding new VM lines; the
 * last one lands anyway (a lease line must reach the VM), and what it erased is put back.
 */
const SNAPSHOT_TRIES = 3;
/**
 * A snapshot whose transfer took longer than this is not sent again for new VM lines: on a slow
 * link a resend takes as long again, in which the VM writes more. It lands, and the lines it
 * erased are put back at once (appends) or by the next snapshot.
 */
const RESEND_WITHIN_MS = 250;

export interface VmSyncOptions {
  readonly mirror?: VmMirror;
  readonly log: Logger;
  /** Milliseconds between idle read-backs; 0 reads back only before full snapshots. */
  readonly readbackMs?: number;
  /** Times the idle read-back (default: the system clock). */
  readonly clock?: Clock;
  /** Lines the VM's clients wrote, found by read-back, oldest first; `place`: where they sit in the VM's file. */
  readonly onVmLines?: (gpuId: string, file: VmFile, lines: readonly string[], place: VmLinePlace) => void;
  /**
   * Lines a new mirror (none was stored: a first start, a lost state directory) finds in the VM
   * before the bridge's first snapshot there: history whose consumption was not recorded, so
   * it is not acted on as new (a control line is never applied twice); the live leases in it
   * are for the host to adopt. With a stored mirror every unknown line is new.
   */
  readonly onVmHistory?: (gpuId: string, file: VmFile, lines: readonly string[]) => void;
  /** Whether a line must survive compaction (a live lease's current ACTIVE line). */
  readonly pinned?: (gpuId: string, file: VmFile, text: string) => boolean;
  /** A full snapshot became due (a refused append, a line too long to append, a lost node). */
  readonly requestPublish?: () => void;
  /** A snapshot landed and the mirror, persisted, knows every line it carried (src/vm/applied.ts). */
  readonly onLanded?: () => void;
  /** Keeps the mirror on disk (src/vm/store.ts); none: in memory only. */
  readonly persist?: MirrorPersistence;
  /**
   * Least milliseconds between full snapshots the VM sync asks for (a lease line over one echo
   * payload, a compaction): changes in between wait and go together, so lease churn costs one
   * snapshot per period, and a VM write can be erased only in that snapshot's last round trips.
   */
  readonly minSnapshotMs?: number;
}

/** What read-back and appends cost and did, for the API, logs and benchmarks. */
export interface VmSyncStats {
  readbacks: number;
  catFrames: number;
  catBytes: number;
  appends: number;
  appendFrames: number;
  appendBytes: number;
  refusedAppends: number;
  compactions: number;
  vmLines: number;
  /** Snapshots built again because the read-back before their `end` found new VM lines. */
  snapshotRetries: number;
  /** VM lines a landed snapshot erased before it could carry them (put back afterwards). */
  linesLost: number;
  /** Lines past a file's VM cap in a read-back (a VM that does not keep its caps): ignored. */
  overCapLines: number;
}

/** Work that rides the publisher's connection between publishes (the publisher's Sidecar). */
export interface ConnectionWork {
  hasWork(): boolean;
  pausedFor(): number;
  step(session: ConsoleSession, signal: AbortSignal): Promise<void>;
}

/**
 * The VM side of the publisher: a sidecar (appends, idle read-back) plus the publisher's VM
 * hooks (key, beforePublish, published). It imports nothing from the daemon: the daemon wires it.
 */
export class VmSync implements ConnectionWork {
  readonly mirror: VmMirror;
  /** Whether this connection's console reads back at all (an older one only takes ECHO). */
  readonly readback: ReadbackProbe;
  readonly stats: VmSyncStats = {
    readbacks: 0,
    catFrames: 0,
    catBytes: 0,
    appends: 0,
    appendFrames: 0,
    appendBytes: 0,
    refusedAppends: 0,
    compactions: 0,
    vmLines: 0,
    snapshotRetries: 0,
    linesLost: 0,
    overCapLines: 0,
  };
  readonly #o: VmSyncOptions;
  /** The mirror is new: files not yet read, nor replaced by a snapshot of ours, hold history. */
  readonly #freshMirror: boolean;
  readonly #seen = new Set<string>();
  readonly #readbackMs: number;
  readonly #clock: Clock;
  #gpus: readonly string[] = [];
  #structure = "";
  /** Bumped when a full snapshot is needed although nothing structural changed. */
  #epoch = 0;
  #built: { sha: string; token: MirrorToken } | null = null;
  /** Files whose next snapshot must compact to the low-water mark (an append was refused). */
  readonly #compact = new Set<string>();
  #nextPollAt = 0;
  #session: ConsoleSession | null = null;
  /** Own lines sent as appends and not yet acknowledged. */
  readonly #inFlight = new Set<PendingLine>();
  /** Lines that only a snapshot can carry, for which one was asked already. */
  readonly #tooLong = new WeakSet<PendingLine>();
  /** GPUs whose VM has no `job` file, learnt per connection and snapshot. */
  #noJob = new Set<string>();
  readonly #minSnapshotMs: number;
  #lastSnapshotAt = -Infinity;
  /** A snapshot the sync asked for waits for the period to pass. */
  #dueTimer: unknown = undefined;
  /** Builds of the snapshot being published. */
  #tries = 0;
  /** When the current build's transfer started. */
  #sendingSince = 0;
  /** VM lines found per file (`gpu/file`): the busiest are read last before a snapshot's `end`. */
  readonly #vmWrites = new Map<string, number>();
  /** Files whose over-cap or diverged read-back was reported on this connection. */
  #overCapWarned = new Set<string>();

  constructor(options: VmSyncOptions) {
    this.#o = options;
    this.mirror = options.mirror ?? new VmMirror();
    this.#freshMirror = options.mirror === undefined;
    this.#readbackMs = options.readbackMs ?? DEFAULTS.readbackMs;
    this.#clock = options.clock ?? systemClock;
    this.readback = new ReadbackProbe(options.log);
    this.#minSnapshotMs = options.minSnapshotMs ?? DEFAULTS.minSnapshotMs;
    this.mirror.pinned = (gpuId, file, text) => this.#pinned(gpuId, file, text);
  }

  /** The counters for /metrics (Prometheus text). */
  metrics(): string {
    const s = this.stats;
    const counter = (name: string, help: string, v: number) => `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name} ${v}\n`;
    return counter("gpu_bridge_vm_lines_total", "Lines the VM's clients wrote, read back and handed to the host.", s.vmLines) +
      counter(
        "gpu_bridge_vm_lines_lost_total",
        "VM lines a landed snapshot erased before carrying them (put back afterwards; VM clients missed them meanwhile).",
        s.linesLost,
      ) +
      counter(
        "gpu_bridge_vm_snapshot_retries_total",
        "Snapshots built again because the VM wrote while they were on their way.",
        s.snapshotRetries,
      ) +
      counter("gpu_bridge_vm_over_cap_lines_total", "Lines past a file's VM cap in a read-back, ignored.", s.overCapLines);
  }

  /** Stops the timer of a waiting snapshot. */
  close(): void {
    this.#clock.clearTimer(this.#dueTimer);
    this.#dueTimer = undefined;
  }

  /**
   * The node logs the VM holds for `gpuId` plus the bridge's pending lines (what a snapshot
   * carries). A read, changing nothing (the API serves it): a ctl the mirror holds nothing of
   * yet shows the seed line that prepare() records before a snapshot carries it.
   */
  nodeLogs(gpuId: string): NodeLogs {
    const ctl = this.mirror.isEmpty(gpuId, "ctl") ? seedCtl(gpuId) : this.mirror.text(gpuId, "ctl");
    return { ctl, lease: this.mirror.text(gpuId, "lease"), status: this.mirror.text(gpuId, "status") };
  }

  /** Before building a snapshot to publish: every GPU's ctl starts with its seed line. */
  prepare(gpuIds: readonly string[]): void {
    for (const gpuId of gpuIds) this.mirror.seed(gpuId, seedCtl(gpuId));
  }

  /**
   * Compacts the files over their high-water mark or whose append was refused. Only right after
   * a read-back: a line the VM wrote and the bridge has not read is never dropped.
   */
  #compactDue(gpuId: string): void {
    for (const file of SNAPSHOT_FILES) {
      const cap = VM_CAPS[file];
      const forced = this.#compact.has(`${gpuId}/${file}`);
      if (forced || this.mirror.bytes(gpuId, file) > cap * HIGH_WATER) {
        const n = this.mirror.compact(gpuId, file, Math.floor(cap * LOW_WATER), (t) => this.#pinned(gpuId, file, t));
        if (n > 0) {
          this.stats.compactions++;
          this.#o.log.debug(
            `compacted /gpu/${gpuId}/${file}: ${n} oldest lines dropped, ${this.mirror.bytes(gpuId, file)} of ${cap} bytes kept`,
          );
          this.#o.persist?.changed();
        }
      }
    }
  }

  /** Records the snapshot built from `ns` (call right after building it). */
  built(ns: Namespace, snap: Snapshot): void {
    this.#gpus = ns.nodes.map((n) => n.id);
    const parts = [
      ...ns.nodes.map((n) => `${n.id}\0${n.info}`),
      ns.active,
      ...ns.models.map((m) => `${m.model_id}\0${m.manifest_toml}`),
      ns.telemetrySchema,
    ];
    this.#structure = sha256Hex(parts.join("\0\0"));
    // A snapshot fitted to the VM's size limit may carry fewer of a log's oldest lines.
    const lines = (text: string) => text.split("\n").length - 1;
    const carried = (gpuId: string, file: VmFile) => {
      const node = ns.nodes.find((n) => n.id === gpuId);
      return node === undefined || file === "job" ? Infinity : lines(node[file]);
    };
    this.#built = { sha: snap.sha256, token: this.mirror.freeze(this.#gpus, carried) };
  }

  key(_snap: Snapshot): string {
    return `${this.#structure}#${this.#epoch}`;
  }

  async beforePublish(session: ConsoleSession, signal: AbortSignal): Promise<void> {
    this.#tries = 0;
    await this.readBack(session, signal);
    this.#sendingSince = this.#clock.now();
    for (const gpuId of this.#gpus) this.#compactDue(gpuId);
  }

  /**
   * Just before the snapshot's `end`: the own lines it carries are recorded (a restart must
   * not take them for the VM's), and, while the snapshot may still be built again, the VM is
   * read back: new lines in a file the snapshot replaces start the publish over (up to
   * SNAPSHOT_TRIES builds, and only while a transfer takes less than RESEND_WITHIN_MS), so
   * the snapshot carries them instead of erasing them. withEnd() then reads once more.
   */
  async beforeEnd(session: ConsoleSession, signal: AbortSignal): Promise<boolean> {
    const token = this.#built?.token;
    if (token !== undefined) this.#o.persist?.sending([...token.files.values()].flatMap((f) => f.pending));
    this.#tries++;
    const took = this.#clock.now() - this.#sendingSince;
    if (this.#tries >= SNAPSHOT_TRIES || took > RESEND_WITHIN_MS) return true; // it lands: withEnd() reads
    const fresh = await this.#readFiles(session, signal);
    if (fresh === 0) return true;
    this.#sendingSince = this.#clock.now();
    this.stats.snapshotRetries++;
    this.#o.log.debug(`the VM wrote ${fresh} lines while a snapshot was on its way; building it again`);
    for (const gpuId of this.#gpus) this.#compactDue(gpuId);
    return false;
  }

  /**
   * Sends the snapshot's `end` (`end()`) right behind a read of every file it replaces, in one
   * window: the VM answers those reads and then applies `end`, so a VM write is erased unseen
   * only if it lands after its file's read there and before `end` (the VM's handling of the
   * lines in between; nothing the bridge can see, as a snapshot replaces files whole). What those
   * reads find, the landing erased: published() puts it back and counts it. The files the VM's
   * clients wrote most go last, nearest to `end`, where the window leaves them no round trip.
   */
  async withEnd(session: ConsoleSession, end: () => Promise<void>, signal: AbortSignal): Promise<void> {
    if (!this.readback.usable(session) || this.readback.mode !== "supported") return end();
    const reading = this.#readFiles(session, signal, true); // queues its CATs before end() queues `end`
    const sent = end();
    sent.catch(() => {}); // awaited below, after the reads
    let failed: unknown = null;
    await reading.catch((error) => (failed = error));
    await sent; // the snapshot did not land: the publish fails with why
    // It landed. A read that failed (a refusal, a mirror that could not be saved) left lines
    // the VM wrote since the read before unseen, and the landing erased them.
    if (failed !== null) {
      this.#o.log.warn(
        `the read-back sent with a snapshot's end failed (${(failed as Error).message}); VM lines written meanwhile may be lost`,
      );
    }
  }

  published(snap: Snapshot): void {
    this.#lastSnapshotAt = this.#clock.now();
    if (this.#built?.sha !== snap.sha256) return;
    const erased = this.mirror.landed(this.#built.token);
    if (erased > 0) {
      this.stats.linesLost += erased;
      this.#o.log.warn(
        `a snapshot erased ${erased} lines the VM wrote while it was on its way (after ${this.#tries} builds); ` +
          `they are put back, and VM clients could not read them meanwhile`,
      );
    }
    this.#compact.clear();
    this.#noJob = new Set(); // a snapshot brings the job files of the VM variant that has them
    for (const gpuId of this.#gpus) for (const file of [...SNAPSHOT_FILES, "job"]) this.#seen.add(`${gpuId}/${file}`);
    this.#o.persist?.changed();
    // The applied-lines ledger is forgotten only once a saved mirror knows every line the snapshot carried.
    if (this.#o.onLanded !== undefined) {
      try {
        this.#o.persist?.flush();
        this.#o.onLanded();
      } catch (error) {
        this.#o.log.warn(`the VM mirror is not saved; VM lines stay in the applied ledger: ${(error as Error).message}`);
      }
    }
  }

  hasWork(): boolean {
    return this.#appendable().length > 0 || (this.#readbackMs > 0 && this.#gpus.length > 0 && this.#clock.now() >= this.#nextPollAt);
  }

  pausedFor(): number {
    if (this.#readbackMs <= 0 || this.#gpus.length === 0) return 0;
    return Math.max(1, this.#nextPollAt - this.#clock.now());
  }

  async step(session: ConsoleSession, signal: AbortSignal): Promise<void> {
    const batch = this.#appendable().slice(0, APPEND_BATCH);
    if (batch.length > 0) return this.#append(session, batch, signal);
    await this.readBack(session, signal);
  }

  /** Reads every node file of the VM back; the VM's new lines go to the host. */
  async readBack(session: ConsoleSession, signal: AbortSignal): Promise<void> {
    await this.#readFiles(session, signal);
  }

  /**
   * Reads every node file back; returns the number of new VM lines in the files a snapshot
   * replaces. The CATs go through the session's window together, queued before the first
   * await (withEnd() relies on it); `busiestLast` sends the files the VM's clients wrote most
   * last. Each answer is taken in the files' own order.
   */
  async #readFiles(session: ConsoleSession, signal: AbortSignal, busiestLast = false): Promise<number> {
    if (session !== this.#session) {
      this.#session = session;
      this.#noJob = new Set();
      this.#overCapWarned = new Set();
    }
    // A console without read-back gets snapshots as the reference sends them.
    if (!this.readback.usable(session)) {
      this.#nextPollAt = this.#clock.now() + this.#readbackMs;
      return 0;
    }
    this.stats.readbacks++;
    const files: { gpuId: string; file: VmFile }[] = [];
    for (const gpuId of this.#gpus) {
      for (const file of [...SNAPSHOT_FILES, "job"] as const) if (file !== "job" || !this.#noJob.has(gpuId)) files.push({ gpuId, file });
    }
    const order = busiestLast ? [...files].sort((a, b) => this.#written(a) - this.#written(b)) : files;
    const reads = new Map<{ gpuId: string; file: VmFile }, Promise<string[] | null | "unsupported">>();
    const send = (f: { gpuId: string; file: VmFile }) => {
      const read = this.#cat(session, `/gpu/${f.gpuId}/${f.file}`, signal);
      read.catch(() => {}); // awaited below, unless an earlier failure ends the read-back
      reads.set(f, read);
    };
    // A connection's first read probes whether its console reads back at all: one CAT, not one per file.
    if (this.readback.mode === "unknown" && order.length > 0) {
      send(order[0]!);
      if ((await reads.get(order[0]!)) === "unsupported") {
        this.#nextPollAt = this.#clock.now() + this.#readbackMs;
        return 0;
      }
    }
    for (const f of order) if (!reads.has(f)) send(f);
    let changed = 0;
    let missing: string | null = null;
    for (const f of files) {
      const lines = await reads.get(f)!;
      if (lines === "unsupported") {
        this.#nextPollAt = this.#clock.now() + this.#readbackMs;
        return 0;
      }
      if (lines === null) {
        if (f.file === "job") this.#noJob.add(f.gpuId);
        else missing ??= `/gpu/${f.gpuId}/${f.file} is missing in the VM`;
        continue;
      }
      const fresh = this.#took(f.gpuId, f.file, lines);
      if (f.file !== "job") changed += fresh;
    }
    this.#nextPollAt = this.#clock.now() + this.#readbackMs;
    if (missing !== null) this.#snapshotDue(missing);
    return changed;
  }

  /** VM lines found so far in `f` (which files its clients write most). */
  #written(f: { gpuId: string; file: VmFile }): number {
    return this.#vmWrites.get(`${f.gpuId}/${f.file}`) ?? 0;
  }

  /** Takes the lines a read-back found in a file; returns how many are new VM lines. */
  #took(gpuId: string, file: VmFile, lines: string[]): number {
    const undo = this.mirror.checkpoint(gpuId, file);
    const { fresh, freshAt, diverged, overCap } = this.mirror.readBack(gpuId, file, lines);
    if (overCap > 0) {
      this.stats.overCapLines += overCap;
      if (!this.#overCapWarned.has(`${gpuId}/${file}`)) {
        this.#overCapWarned.add(`${gpuId}/${file}`);
        this.#o.log.warn(`/gpu/${gpuId}/${file} in the VM holds ${overCap} lines past its ${VM_CAPS[file]}-byte cap; ignored`);
      }
    }
    // The VM's clients filled it past the high-water mark: compact before it refuses them.
    if (file !== "job" && this.mirror.bytes(gpuId, file) > VM_CAPS[file] * HIGH_WATER) {
      this.#compactFile(`${gpuId}/${file}`, `${this.mirror.bytes(gpuId, file)} of ${VM_CAPS[file]} bytes used`);
    }
    if (diverged && !this.#overCapWarned.has(`${gpuId}/${file}#diverged`)) {
      this.#overCapWarned.add(`${gpuId}/${file}#diverged`); // once per connection: a VM may do it every time
      this.#o.log.warn(`/gpu/${gpuId}/${file} in the VM is not what the bridge last left there; keeping both`);
    }
    const history = this.#freshMirror && !this.#seen.has(`${gpuId}/${file}`);
    this.#seen.add(`${gpuId}/${file}`);
    if (fresh.length === 0) {
      if (diverged || overCap > 0) this.#o.persist?.changed();
      return 0;
    }
    this.#vmWrites.set(`${gpuId}/${file}`, this.#written({ gpuId, file }) + fresh.length);
    // Saved before they are acted on, so a restart never hands them over again (a crash
    // in between leaves them unapplied, never applied twice). Breadcrumbs are only kept.
    if (history || file !== "status") {
      try {
        this.#o.persist?.flush();
      } catch (error) {
        undo(); // not recorded as read: the next read-back finds them again
        throw error;
      }
    } else this.#o.persist?.changed();
    if (history) {
      this.#o.log.info(
        `/gpu/${gpuId}/${file}: ${fresh.length} lines already in the VM, taken as history (no stored mirror says which were acted on)`,
      );
      this.#o.onVmHistory?.(gpuId, file, fresh);
    } else {
      this.stats.vmLines += fresh.length;
      this.#o.onVmLines?.(gpuId, file, fresh, { vmLines: lines, at: freshAt });
    }
    return fresh.length;
  }

  /** Asks for a full snapshot, at most one per `minSnapshotMs`: what comes meanwhile goes with it. */
  #snapshotDue(why: string): void {
    this.#o.log.debug(`full snapshot due: ${why}`);
    if (this.#dueTimer !== undefined) return;
    const due = () => {
      this.#dueTimer = undefined;
      this.#epoch++;
      this.#o.requestPublish?.();
    };
    const wait = this.#lastSnapshotAt + this.#minSnapshotMs - this.#clock.now();
    if (wait <= 0) due();
    else this.#dueTimer = this.#clock.setTimer(wait, due);
  }

  /** Own lines that can go as appends now: one ECHO payload each, files not awaiting compaction. */
  #appendable(): PendingLine[] {
    const out: PendingLine[] = [];
    const blocked = new Set<string>();
    for (const p of this.mirror.pending()) {
      if (this.#inFlight.has(p)) continue;
      const key = `${p.gpuId}/${p.file}`;
      if (blocked.has(key) || this.#compact.has(key) || !this.#gpus.includes(p.gpuId)) {
        blocked.add(key);
        continue;
      }
      // Too long for one ECHO (a lease record is about 140 bytes): only a snapshot can carry it,
      // and the lines after it in the same file wait with it, so the file keeps its order.
      if (byteLength(p.text) > LIMITS.echoPayloadBytes || /[\r\n]/.test(p.text)) {
        blocked.add(key);
        if (!this.#tooLong.has(p)) {
          this.#tooLong.add(p);
          this.#snapshotDue(`a ${byteLength(p.text)}-byte line for /gpu/${key} is over the ${LIMITS.echoPayloadBytes}-byte echo payload`);
        }
        continue;
      }
      out.push(p);
    }
    return out;
  }

  /**
   * Sends `batch` as ECHO appends through the session's window and returns at once: each line
   * is committed when its ack comes, so a line logged meanwhile goes out behind it without
   * waiting a round trip. A refusal (a full log) compacts that file by a snapshot; a lost link
   * leaves the lines pending (a read-back after reconnecting finds those that landed).
   */
  #append(session: ConsoleSession, batch: PendingLine[], signal: AbortSignal): void {
    // Recorded first: found in the VM after a crash, they must read as the bridge's own.
    this.#o.persist?.sending(batch);
    const projected = new Map<string, number>();
    for (const p of batch) {
      const key = `${p.gpuId}/${p.file}`;
      // A file that would pass its cap is compacted by a snapshot instead of refused line by line.
      const bytes = (projected.get(key) ?? this.mirror.bytes(p.gpuId, p.file, false) + this.#inFlightBytes(key)) + byteLength(p.text) + 1;
      projected.set(key, bytes);
      if (bytes > VM_CAPS[p.file]) {
        this.#compactFile(key, `appending would pass the VM's ${VM_CAPS[p.file]}-byte cap`);
        continue;
      }
      if (this.#compact.has(key)) continue;
      const line = `ECHO /gpu/${p.gpuId}/${p.file} ${p.text}`;
      this.#inFlight.add(p);
      this.mirror.sending(p);
      session.request(line, "ECHO", signal).then(() => {
        this.#inFlight.delete(p);
        this.mirror.acked(p);
        this.stats.appends++;
        this.stats.appendFrames += 2;
        this.stats.appendBytes += 8 + byteLength(line) + byteLength(`OK ECHO path=/gpu/${key} bytes=${byteLength(p.text)}`);
        this.#o.persist?.changed();
      }, (error: unknown) => {
        this.#inFlight.delete(p);
        if (error instanceof ConsoleError && error.kind === "rejected" && error.ack?.verb === "ECHO") {
          this.stats.refusedAppends++;
          this.#compactFile(key, `the VM refused an append: ${error.ack.detail}`);
        }
        // Otherwise the link is gone: the publisher reconnects, and the line is still pending.
      });
    }
  }

  #inFlightBytes(key: string): number {
    let n = 0;
    for (const p of this.#inFlight) if (`${p.gpuId}/${p.file}` === key) n += byteLength(p.text) + 1;
    return n;
  }

  #compactFile(key: string, why: string): void {
    if (this.#compact.has(key)) return;
    this.#compact.add(key);
    this.#snapshotDue(`/gpu/${key}: ${why}; republishing it compacted`);
  }

  #pinned(gpuId: string, file: VmFile, text: string): boolean {
    if (file === "ctl" && text === seedCtl(gpuId).replace(/\n$/, "")) return true;
    return this.#o.pinned?.(gpuId, file, text) ?? false;
  }

  /** `CAT path`: its lines, null when the VM has no such file, "unsupported" when the console cannot read. Counts the link cost. */
  async #cat(session: ConsoleSession, path: string, signal: AbortSignal): Promise<string[] | null | "unsupported"> {
    const line = `CAT ${path}`;
    this.stats.catFrames += 1;
    this.stats.catBytes += 4 + byteLength(line);
    try {
      const lines = await session.requestLines(line, "CAT", signal);
      const ack = `OK CAT path=${path} data=${lines.at(-1) ?? ""}`;
      this.stats.catFrames += lines.length + 2;
      this.stats.catBytes += 8 + Math.min(128, byteLength(ack)) + lines.reduce((n, l) => n + 4 + byteLength(l), 0);
      this.readback.answered();
      return lines;
    } catch (error) {
      if (error instanceof ConsoleError && error.kind === "rejected" && error.ack?.fields.reason === "not-found") {
        this.stats.catFrames += 1;
        this.stats.catBytes += 4 + byteLength(error.ack.detail) + 8;
        this.readback.answered();
        return null;
      }
      if (this.readback.refused(error)) return "unsupported";
      throw error;
    }
  }
}

/** Two sidecars on one connection, the first one's work first. */
export function bothSidecars(first: ConnectionWork, second: ConnectionWork | null | undefined): ConnectionWork {
  if (second == null) return first;
  return {
    hasWork: () => first.hasWork() || second.hasWork(),
    pausedFor: () => {
      const a = first.pausedFor();
      const b = second.pausedFor();
      return a === 0 ? b : b === 0 ? a : Math.min(a, b);
    },
    step: (session, signal) => (first.hasWork() ? first.step(session, signal) : second.step(session, signal)),
  };
}
