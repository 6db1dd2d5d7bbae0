/**
 * The mock Cohesix console's protocol (docs/protocol.md#8-the-console), free of sockets: a shared state
 * (the `/gpu` tree, the ctl receiver, login failures, faults) and a per-connection handler
 * that turns each inbound line into outbound lines.
 */
import { parseAck } from "../../src/contract/ack.ts";
import { LIMITS } from "../../src/contract/limits.ts";
import type { Namespace } from "../../src/contract/namespace.ts";
import { CtlReceiver } from "./receiver.ts";
import type { Faults } from "./faults.ts";
import { QueenTelemetry, refusal } from "./queen.ts";
import { QueenExport } from "./queen-export.ts";
import { QUEEN } from "../../src/contract/queen.ts";
import { treeFiles } from "./tree.ts";
import { QUEEN_CTL, type Role, type VmEvent, VmTree } from "./vm.ts";
import { byteLength } from "../../src/util/bytes.ts";

export const CTL = "/gpu/bridge/ctl";
export const STATUS = "/gpu/bridge/status";
const INVALID_PAYLOAD = `ERR ECHO reason=policy detail=invalid-payload path=${CTL} error=invalid payload`;
/**
 * Lines the transcript keeps by default: the newest 2,048, a few publishes' worth, so a mock left
 * running for hours holds at most 2,048 + 256 lines of at most 8 KiB (a frame) each, about
 * 300 KB at the bridge's usual line sizes. Tests that need the whole transcript ask for it.
 */
export const DEFAULT_KEEP_LINES = 2048;
const TRIM_SLACK = 256;

/** Something the console did, for tests and the `mock-console` command's output. */
export type ConsoleEvent =
  | { type: "connect"; conn: number }
  | { type: "disconnect"; conn: number }
  | { type: "auth"; conn: number; ok: boolean }
  | { type: "published"; bytes: number; sha256: string; tree: Namespace }
  | { type: "refused"; conn: number; line: string; reason: string }
  | { type: "dropped"; conn: number; line: string }
  /** A `CAT` or `LS` was answered: what it listed is what the reader saw of `path` at this moment. */
  | { type: "read"; conn: number; path: string }
  | { type: "vm"; event: VmEvent };

/** Settings of a mock console. */
export interface ConsoleSettings {
  readonly token: string;
  readonly authTimeoutMs?: number;
  readonly now?: () => number;
  /** Drives the link's jitter and loss (default Math.random). */
  readonly random?: () => number;
  /** How many of the newest received lines `linesReceived` keeps (default 2,048; Infinity: all). */
  readonly keepLines?: number;
}

/** State shared by every connection of one console. */
export class ConsoleState {
  readonly token: string;
  readonly authTimeoutMs: number;
  readonly now: () => number;
  readonly random: () => number;
  faults: Faults = {};
  readonly receiver = new CtlReceiver();
  readonly queen = new QueenTelemetry();
  /** The Queen's reader of that ingest and its LoRA export policy (`/queen/export/lora_jobs`). */
  readonly export: QueenExport;
  /** The VM's `/gpu` tree, its workers and the Queen's ctl (docs/protocol.md#12-what-the-vm-writes-back). */
  readonly vm = new VmTree();
  tree: Namespace | null = null;
  publishes = 0;
  /** The most lines one connection ever had unanswered (queued, or being answered). */
  maxUnanswered = 0;
  echoes = 0;
  connections = 0;
  /** Every line received, counted (the transcript keeps only the newest `keepLines`). */
  linesCounted = 0;
  readonly keepLines: number;
  #received: string[] = [];
  #failures: number[] = [];
  #cooldownUntil = 0;
  #listeners = new Set<(e: ConsoleEvent) => void>();

  constructor(settings: ConsoleSettings) {
    this.token = settings.token;
    this.authTimeoutMs = settings.authTimeoutMs ?? 5000;
    this.now = settings.now ?? Date.now;
    this.random = settings.random ?? Math.random;
    this.keepLines = settings.keepLines ?? DEFAULT_KEEP_LINES;
    if (!(this.keepLines >= 1)) throw new RangeError(`keepLines must be at least 1, got ${this.keepLines}`);
    this.vm.files.set(CTL, "");
    this.vm.onEvent = (event) => this.emit({ type: "vm", event });
    this.export = new QueenExport(this.now);
    this.queen.onLine = (device, mime, text) => this.export.take(device, mime, text);
  }

  /** The newest `keepLines` lines received, oldest first, across connections. */
  get linesReceived(): readonly string[] {
    return this.#received.length > this.keepLines ? this.#received.slice(-this.keepLines) : this.#received;
  }

  /** Lines the transcript holds now: never more than `keepLines` + 256. */
  get linesHeld(): number {
    return this.#received.length;
  }

  /** Adds `line` to the transcript, dropping the oldest in batches (amortised O(1) per line). */
  received(line: string): void {
    this.linesCounted++;
    this.#received.push(line);
    if (this.#received.length > this.keepLines + TRIM_SLACK) this.#received.splice(0, this.#received.length - this.keepLines);
  }

  /** Every file under `/gpu`, path -> text. */
  get files(): Map<string, string> {
    return this.vm.files;
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(listener: (e: ConsoleEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: ConsoleEvent): void {
    for (const l of this.#listeners) l(event);
  }

  /** The text of `path`, the status file included. */
  read(path: string): string | undefined {
    if (path === STATUS) return this.receiver.status;
    if (path === QUEEN_CTL) return this.vm.queenCtl.map((l) => l + "\n").join("");
    return this.files.get(path);
  }

  /** Records a login failure; three within 60 s start a 90 s cooldown. */
  loginFailed(): void {
    const t = this.now();
    this.#failures = this.#failures.filter((f) => t - f < 60_000);
    this.#failures.push(t);
    if (this.#failures.length >= 3) {
      this.#cooldownUntil = t + 90_000;
      this.#failures = [];
    }
  }

  /** Milliseconds of login cooldown left. */
  cooldownLeft(): number {
    return Math.max(0, this.#cooldownUntil - this.now());
  }

  landed(tree: Namespace, bytes: number, sha256: string): void {
    this.tree = tree;
    const files = treeFiles(tree);
    files.set(CTL, "");
    this.vm.replace(tree, files);
    this.publishes++;
    this.emit({ type: "published", bytes, sha256, tree });
  }
}

/** What a connection handler wants done: lines to send, and whether to hang up after. */
export interface Reply {
  readonly lines: string[];
  readonly close?: boolean;
}

/** One client connection's protocol state. */
export class ConsoleConnection {
  readonly id: number;
  readonly #state: ConsoleState;
  #authed = false;
  #role: Role | null = null;

  constructor(state: ConsoleState) {
    this.#state = state;
    this.id = ++state.connections;
  }

  get authed(): boolean {
    return this.#authed;
  }

  /** Handles one inbound line. */
  handle(line: string): Reply {
    const s = this.#state;
    s.received(line);
    const space = line.indexOf(" ");
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const rest = space < 0 ? "" : line.slice(space + 1);
    if (byteLength(line) > LIMITS.commandBytes) {
      return { lines: [`ERR ${verb} reason=too-long detail=command-over-${LIMITS.commandBytes}-bytes`] };
    }
    if (verb === "AUTH") return this.#auth(rest);
    if (!this.#authed) return { lines: [`ERR ${verb} reason=unauthenticated`] };
    switch (verb) {
      case "ATTACH":
        return this.#attach(rest);
      case "PING":
        return { lines: ["PONG", "OK PING reply=pong"] };
      case "ECHO":
        return this.#echo(rest);
      case "CAT":
      case "LS":
        if (s.faults.noReadback) return { lines: [`ERR ${verb} reason=unsupported`] };
        return verb === "CAT" ? this.#cat(rest.trim()) : this.#ls(rest.trim());
      default:
        return { lines: [`ERR ${verb} reason=unknown-command`] };
    }
  }

  #auth(token: string): Reply {
    const s = this.#state;
    const wait = s.cooldownLeft();
    if (wait > 0) return { lines: [`ERR AUTH reason=cooldown delay_ms=${wait}`], close: true };
    if (token !== s.token) {
      s.loginFailed();
      s.emit({ type: "auth", conn: this.id, ok: false });
      return { lines: ["ERR AUTH reason=invalid-token"], close: true };
    }
    this.#authed = true;
    s.emit({ type: "auth", conn: this.id, ok: true });
    return { lines: ["OK AUTH detail=welcome"] };
  }

  #attach(rest: string): Reply {
    const refusal = this.#state.faults.attachRefusal;
    if (refusal !== undefined) return { lines: [`ERR ATTACH ${refusal}`] };
    const space = rest.indexOf(" ");
    const role = space < 0 ? rest : rest.slice(0, space);
    const ticket = space < 0 ? "" : rest.slice(space + 1).trim();
    if (role !== "queen" && role !== "worker-gpu") return { lines: [`ERR ATTACH reason=policy detail=unknown-role`] };
    if (role === "worker-gpu" && ticket === "") return { lines: [`ERR ATTACH reason=policy detail=ticket-required`] };
    this.#role = role;
    return { lines: [`OK ATTACH role=${role}`] };
  }

  #echo(rest: string): Reply {
    const s = this.#state;
    s.echoes++;
    const space = rest.indexOf(" ");
    const path = space < 0 ? rest : rest.slice(0, space);
    const payload = space < 0 ? "" : rest.slice(space + 1);
    const fault = s.faults.errOnEcho;
    if (fault !== undefined && fault.n === s.echoes) {
      delete s.faults.errOnEcho;
      return { lines: [`ERR ECHO ${fault.detail}`] };
    }
    if (byteLength(path) > LIMITS.pathBytes) return { lines: ["ERR ECHO reason=policy detail=path-too-long"] };
    if (byteLength(payload) > LIMITS.echoPayloadBytes || /[\r\n]/.test(payload)) {
      return { lines: [`ERR ECHO reason=policy detail=invalid-payload path=${path} error=payload too long`] };
    }
    if (s.queen.handles(path)) return { lines: [s.queen.echo(path, payload, this.#role)] };
    if (s.export.handles(path)) return { lines: [refusal("ECHO", path, "denied")] };
    if (s.vm.handles(path)) return { lines: [s.vm.echo(path, payload, this.#role)] };
    if (path !== CTL) return { lines: [`ERR ECHO reason=not-found path=${path}`] };
    if (this.#role !== "queen") return { lines: [`ERR ECHO reason=policy detail=queen-only path=${path}`] };
    const result = s.receiver.accept(payload);
    if (!result.ok) {
      s.emit({ type: "refused", conn: this.id, line: payload, reason: result.reason });
      return { lines: [INVALID_PAYLOAD] };
    }
    if (result.tree !== undefined) {
      const m = /bytes=(\d+) sha256=([0-9a-f]{64})/.exec(s.receiver.status)!;
      s.landed(result.tree, Number(m[1]), m[2]!);
    }
    return { lines: [`OK ECHO path=${path} bytes=${byteLength(payload)}`] };
  }

  #cat(path: string): Reply {
    const s = this.#state;
    s.emit({ type: "read", conn: this.id, path });
    if (s.queen.handles(path)) return { lines: s.queen.cat(path) };
    if (s.export.handles(path)) return { lines: s.export.cat(path) };
    return { lines: s.vm.cat(path, s.read(path)) };
  }

  #ls(path: string): Reply {
    const s = this.#state;
    if (s.queen.handles(path) || s.export.handles(path)) {
      const names = s.queen.handles(path) ? s.queen.ls(path) : s.export.ls(path);
      if (names === null) return { lines: [refusal("LS", path, "invalid-path")] };
      if (names.length > QUEEN.catLines) return { lines: [refusal("LS", path, "buffer-full")] };
      return { lines: [`OK LS path=${path} entries=${names.length}`, ...names, "END"] };
    }
    const paths = [...this.#state.files.keys(), STATUS];
    const names = this.#state.vm.ls(path || "/gpu", paths);
    if (names === null) return { lines: [`ERR LS reason=not-found path=${path}`] };
    return { lines: [`OK LS path=${path || "/gpu"} entries=${names.length}`, ...names, "END"] };
  }
}

/**
 * Noise the console interleaves when asked: log mirror, `PONG`, `END`. Never an ack: one that
 * answers no line in flight is a protocol error to the bridge (see `duplicateAcks`).
 */
export const NOISE_LINES = ["[net-console] queue depth=1", "log: worker-1 heartbeat", "PONG", "END"];

/** True if `line` is an ack (used to place faults on acks only). */
export function isAck(line: string): boolean {
  return parseAck(line) !== null;
}
