/**
 * The publishing loop of the daemon: one connection at a time, one publish at a time, and
 * never an exit on a transient fault. It republishes on every new connection, right after a
 * change (debounced), and on the interval when the snapshot differs from what the VM holds;
 * an unchanged snapshot is re-sent only every `refreshMs`, so a VM that lost its tree without
 * dropping the link is still repaired.
 */
import { ackDelayMs } from "../contract/ack.ts";
import { ConsoleError } from "./errors.ts";
import { type ConsoleTarget, handshake, openSession, sendLines } from "./publish.ts";
import type { ConsoleSession } from "./session.ts";
import type { Connect } from "../runtime/transport.ts";
import type { Logger } from "../util/log.ts";
import { publishLines, type Snapshot } from "../contract/snapshot.ts";
import { Histogram, PUBLISH_BUCKETS } from "../util/histogram.ts";
import { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF } from "../util/backoff.ts";
import { type Clock, delay, systemClock } from "../util/clock.ts";
import { DEFAULTS } from "../config/defaults.ts";

/** Settings of a Publisher; durations in milliseconds. */
export interface PublisherOptions {
  readonly connect: Connect;
  readonly target: ConsoleTarget;
  /** Builds the current snapshot; called before every publish decision. */
  readonly snapshot: () => Promise<Snapshot>;
  readonly log: Logger;
  readonly intervalMs: number;
  readonly refreshMs?: number;
  readonly ackTimeoutMs?: number;
  /** Console lines in flight before their acks (default: `--window`'s). */
  readonly window?: number;
  readonly pingIdleMs?: number;
  readonly debounceMs?: number;
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
  /** Times the interval, debounce, pings, backoff and ack deadlines (default: the system clock). */
  readonly clock?: Clock;
  /** Other traffic that rides the same connection between publishes (telemetry forwarding). */
  readonly sidecar?: Sidecar;
  /** The VM's own writes: read back before every publish, and what decides that one is due. */
  readonly vm?: VmHooks;
  /** Told of each change of `stats.state`, with the last error (null before any). */
  readonly onState?: (state: PublisherStats["state"], lastError: string | null) => void;
}

/** How a publisher that appends rather than replaces decides and prepares a full snapshot. */
export interface VmHooks {
  /** What only a snapshot can change; a publish is due when it differs from the last published. */
  key(snap: Snapshot): string;
  /** Reads the VM's files back before a snapshot replaces them. */
  beforePublish(session: ConsoleSession, signal: AbortSignal): Promise<void>;
  /** The snapshot landed in the VM. */
  published(snap: Snapshot): void;
  /**
   * Everything of the snapshot but its `end` is sent: the last moment to read the VM back.
   * False starts the publish over with a snapshot built anew (the VM changed meanwhile).
   */
  beforeEnd?(session: ConsoleSession, signal: AbortSignal): Promise<boolean>;
  /**
   * Sends the snapshot's `end` by calling `end`, with whatever must reach the console in the
   * same window just before it (the last read-back); resolves once `end` is acknowledged.
   */
  withEnd?(session: ConsoleSession, end: () => Promise<void>, signal: AbortSignal): Promise<void>;
}

/** Work the publisher does over its connection while no snapshot is due. */
export interface Sidecar {
  hasWork(): boolean;
  /** Milliseconds until work that is paused may resume (0: none paused). */
  pausedFor(): number;
  /** Does one unit of work; link failures throw. */
  step(session: ConsoleSession, signal: AbortSignal): Promise<void>;
}

/** The last successful publish. */
export interface PublishRecord {
  readonly bytes: number;
  readonly sha256: string;
  readonly at: string;
  readonly durationMs: number;
  readonly frames: number;
}

/** What the publisher has done so far (served by the API, used by tests). */
export interface PublisherStats {
  state: "idle" | "connecting" | "connected" | "backoff" | "stopped";
  publishes: number;
  /** Snapshot bytes those publishes carried. */
  publishedBytes: number;
  failures: number;
  reconnects: number;
  skippedUnchanged: number;
  lastPublish: PublishRecord | null;
  lastError: string | null;
  /** Publish durations in seconds, for /metrics. */
  readonly durations: Histogram;
}

type Wake = "interval" | "change" | "ping" | "closed" | "work" | "stop";

/** The daemon's console side. */
export class Publisher {
  readonly stats: PublisherStats = {
    state: "idle",
    publishes: 0,
    publishedBytes: 0,
    failures: 0,
    reconnects: 0,
    skippedUnchanged: 0,
    lastPublish: null,
    lastError: null,
    durations: new Histogram(PUBLISH_BUCKETS),
  };
  readonly #o: Required<Omit<PublisherOptions, "random" | "sidecar" | "clock" | "vm" | "onState">> & {
    random: () => number;
    sidecar?: Sidecar;
    vm?: VmHooks;
    onState?: PublisherOptions["onState"];
  };
  readonly #clock: Clock;
  readonly #stop = new AbortController();
  #session: ConsoleSession | null = null;
  #vmSha: string | null = null;
  #lastSentAt = 0;
  #lastTrafficAt = 0;
  #dirty = false;
  #debounce: unknown;
  #wake: ((why: Wake) => void) | null = null;
  #loop: Promise<void> | null = null;
  #everConnected = false;

  constructor(options: PublisherOptions) {
    this.#o = {
      refreshMs: DEFAULTS.publishRefreshMs,
      ackTimeoutMs: DEFAULTS.ackTimeoutMs,
      window: DEFAULTS.window,
      pingIdleMs: DEFAULTS.pingIdleMs,
      debounceMs: DEFAULTS.publishDebounceMs,
      backoff: DEFAULT_BACKOFF,
      random: Math.random,
      ...options,
    };
    this.#clock = options.clock ?? systemClock;
  }

  /** Starts the loop; resolves when it has stopped. */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#loop;
  }

  /** Signals that the snapshot may have changed; the publish follows within `debounceMs`. */
  notifyChange(): void {
    if (this.#debounce !== undefined) return;
    this.#debounce = this.#clock.setTimer(this.#o.debounceMs, () => {
      this.#debounce = undefined;
      this.#dirty = true;
      this.#wake?.("change");
    });
  }

  /** Signals that the sidecar has new work (telemetry was spooled). */
  notifyWork(): void {
    this.#wake?.("work");
  }

  /** Abandons any in-flight publish, closes the connection and waits for the loop to end. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#clock.clearTimer(this.#debounce);
    this.#wake?.("stop");
    this.#session?.close();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const log = this.#o.log;
    let attempt = 0;
    while (!this.#stop.signal.aborted) {
      try {
        if (this.#session === null || this.#session.closed) await this.#connect();
        this.#dirty = false;
        let snap = await this.#o.snapshot();
        const stale = this.#clock.now() - this.#lastSentAt >= this.#o.refreshMs;
        const vm = this.#o.vm;
        const key = vm?.key(snap) ?? snap.sha256;
        if (key !== this.#vmSha || stale) {
          const reason = this.#vmSha === null ? "connected" : key !== this.#vmSha ? "changed" : "refresh";
          if (vm !== undefined) {
            // What the VM's clients wrote since the last read goes into the snapshot that replaces it.
            await vm.beforePublish(this.#session!, this.#stop.signal);
            snap = await this.#o.snapshot();
          }
          while (!(await this.#publish(snap, reason))) snap = await this.#o.snapshot();
          vm?.published(snap);
          this.#vmSha = vm?.key(snap) ?? snap.sha256;
          attempt = 0;
          this.#setState("connected"); // after a retried publish on a link that stayed up
        } else {
          this.stats.skippedUnchanged++;
        }
        // Between publishes, and yielding to any snapshot change, the sidecar uses the link.
        const sidecar = this.#o.sidecar;
        while (sidecar?.hasWork() && !this.#dirty && !this.#stop.signal.aborted) {
          await sidecar.step(this.#session!, this.#stop.signal);
          this.#lastTrafficAt = this.#clock.now();
        }
        const why = await this.#sleep();
        if (why === "closed") throw this.#session?.closedError ?? new Error("The console connection ended");
        if (why === "ping") {
          await this.#session!.request("PING", "PING", this.#stop.signal);
          this.#lastTrafficAt = this.#clock.now();
        }
      } catch (error) {
        if (this.#stop.signal.aborted) break;
        this.stats.failures++;
        const message = error instanceof Error ? error.message : String(error);
        this.stats.lastError = message;
        const ack = error instanceof ConsoleError ? error.ack : undefined;
        const asked = ack === undefined ? undefined : ackDelayMs(ack);
        const linkLost = !(error instanceof ConsoleError) || error.kind !== "rejected" || this.#session?.closed !== false;
        if (linkLost) this.#dropSession();
        const delay = asked ?? backoffDelay(attempt++, this.#o.backoff, this.#o.random());
        this.#setState("backoff");
        log.warn(
          `${message}; ${linkLost ? "reconnecting" : "retrying the publish"} in ${delay} ms` +
            (asked !== undefined ? " (as the console asked)" : ` (attempt ${attempt})`),
        );
        await this.#delay(delay);
      }
    }
    this.#dropSession();
    this.#setState("stopped");
  }

  /** Moves to `state`, telling `onState` when it is a change. */
  #setState(state: PublisherStats["state"]): void {
    if (this.stats.state === state) return;
    this.stats.state = state;
    this.#o.onState?.(state, this.stats.lastError);
  }

  async #connect(): Promise<void> {
    this.#setState("connecting");
    if (this.#everConnected) this.stats.reconnects++;
    const log = this.#o.log;
    const session = await openSession(this.#o.connect, this.#o.target, {
      ackTimeoutMs: this.#o.ackTimeoutMs,
      clock: this.#clock,
      window: this.#o.window,
      onOther: (line) => log.debug(`<- ${line}`),
      // An idle loop would otherwise learn of a dropped link only at the next ping.
      onClose: () => {
        if (this.#session === session) this.#wake?.("closed");
      },
    });
    this.#session = session;
    try {
      await handshake(session, this.#o.target, this.#stop.signal);
    } catch (error) {
      // A refused AUTH or ATTACH leaves an unauthenticated link, even if the console keeps it
      // open: end it, so the retry is a fresh connection after backoff, never a publish on it.
      this.#dropSession();
      throw error;
    }
    this.#everConnected = true;
    this.#vmSha = null; // a new connection may face a restarted VM: always republish
    this.#lastTrafficAt = this.#clock.now();
    this.#setState("connected");
    log.info(`connected to ${this.#o.target.host}:${this.#o.target.port} as queen`);
  }

  /** Sends `snap`; false when the VM hooks ask to start over before its `end`. */
  async #publish(snap: Snapshot, reason: string): Promise<boolean> {
    const session = this.#session!;
    // A measurement, not a decision: how long the publish really took (the histogram and the
    // log), so the monotonic clock rather than the injected one.
    const started = performance.now();
    const frames0 = session.framesSent;
    const lines = publishLines(snap);
    const vm = this.#o.vm;
    if (vm?.beforeEnd !== undefined) {
      await sendLines(session, lines.slice(0, -1), this.#stop.signal);
      if (!(await vm.beforeEnd(session, this.#stop.signal))) return false;
      const end = () => sendLines(session, lines.slice(-1), this.#stop.signal);
      await (vm.withEnd !== undefined ? vm.withEnd(session, end, this.#stop.signal) : end());
    } else {
      await sendLines(session, lines, this.#stop.signal);
    }
    const durationMs = performance.now() - started;
    this.#vmSha = snap.sha256;
    this.#lastSentAt = this.#lastTrafficAt = this.#clock.now();
    const record = {
      bytes: snap.bytes.length,
      sha256: snap.sha256,
      at: new Date(this.#clock.now()).toISOString(),
      durationMs,
      frames: session.framesSent - frames0,
    };
    this.stats.lastPublish = record;
    this.stats.publishes++;
    this.stats.publishedBytes += record.bytes;
    this.stats.durations.observe(durationMs / 1000);
    // Many a second under lease churn: the daemon's INFO summary counts them (src/app/activity.ts).
    // A connection's first publish is said at INFO: once per connection, and what a person
    // starting the bridge waits to see.
    this.#o.log[reason === "connected" ? "info" : "debug"](
      `published ${record.bytes} bytes sha256=${snap.sha256.slice(0, 12)} in ${record.frames} frames, ` +
        `${durationMs.toFixed(1)} ms (${reason})`,
    );
    return true;
  }

  /** Waits for the interval, a change, the ping deadline or stop. */
  #sleep(): Promise<Wake> {
    if (this.#dirty) return Promise.resolve("change");
    // Closed while no one was waiting (a surplus ack right after a publish): reconnect now, not
    // at the next ping.
    if (this.#session?.closed === true) return Promise.resolve("closed");
    const untilPing = Math.max(0, this.#lastTrafficAt + this.#o.pingIdleMs - this.#clock.now());
    const paused = this.#o.sidecar?.pausedFor() ?? 0;
    const wait = Math.min(this.#o.intervalMs, untilPing, paused > 0 ? paused : Infinity);
    return new Promise<Wake>((resolve) => {
      const timer = this.#clock.setTimer(wait, () => done(wait === untilPing && untilPing < this.#o.intervalMs ? "ping" : "interval"));
      const done = (why: Wake) => {
        this.#clock.clearTimer(timer);
        this.#wake = null;
        resolve(why);
      };
      this.#wake = done;
      if (this.#stop.signal.aborted) done("stop");
    });
  }

  /** Waits `ms`, or until stop; changes do not cut a backoff short. */
  #delay(ms: number): Promise<void> {
    return delay(ms, this.#stop.signal, this.#clock).catch(() => {});
  }

  #dropSession(): void {
    this.#session?.close();
    this.#session = null;
    this.#vmSha = null;
  }
}
