/**
 * The VRAM audit trail: one JSON line per event (`{"ts":…,"event":"VramSealed",…}`) appended to
 * `vram-audit.jsonl` in the state folder, and the same line in the log. Events carry ids, sizes
 * and digests only: no pointer, key or token is ever handed to this module. The trail is bounded:
 * past `maxBytes` the file rolls to `.1` (`.1` to `.2`, …) and the oldest of `files` goes, so it
 * takes at most `maxBytes × files` on disk however many verifications run.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../util/log.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { appendFully } from "../util/files.ts";

export type AuditEvent =
  | "VramAllocated"
  | "VramAllocationFailed"
  | "VramSealed"
  | "SealVerified"
  | "SealVerificationFailed"
  | "VramDeallocated"
  | "PolicyViolation"
  | "ShareHandedOut"
  | "ShareRevoked"
  | "ShardSetReady"
  | "ShardSetFailed"
  | "ShardSetIncomplete";

/** How large the trail may grow: `files` files of at most `maxBytes` each (a longer line alone in one). */
export interface AuditRotation {
  readonly maxBytes: number;
  readonly files: number;
}

export class VramAudit {
  readonly #path: string | null;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #rotation: AuditRotation;
  #fd: number | null = null;
  #size = 0;
  #warned = false;
  /** Told of every event after it is written (the bridge's record of changes). */
  onRecord: ((event: AuditEvent, fields: Readonly<Record<string, unknown>>) => void) | null = null;

  /** `path` null keeps the trail in the log only (tests). */
  constructor(
    path: string | null,
    log: Logger,
    now: () => number = Date.now,
    rotation: AuditRotation = { maxBytes: DEFAULTS.vramAuditBytes, files: DEFAULTS.vramAuditFiles },
  ) {
    this.#path = path;
    this.#log = log;
    this.#now = now;
    this.#rotation = rotation;
    if (path !== null) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }

  record(event: AuditEvent, fields: Record<string, unknown>): void {
    const line = JSON.stringify({ ts: new Date(this.#now()).toISOString(), event, ...fields });
    const critical = fields.severity === "CRITICAL";
    if (critical || event === "PolicyViolation" || event === "VramAllocationFailed") this.#log.error(`audit ${line}`);
    else this.#log.info(`audit ${line}`);
    this.#write(line);
    this.onRecord?.(event, fields);
  }

  #write(line: string): void {
    if (this.#path === null) return;
    try {
      this.#append(this.#path, new TextEncoder().encode(line + "\n"));
      if (this.#warned) this.#log.info(`The VRAM audit trail ${this.#path} is written again`);
      this.#warned = false;
    } catch (error) {
      if (!this.#warned) this.#log.error(`Cannot append to the VRAM audit trail ${this.#path}: ${(error as Error).message}`);
      this.#warned = true;
    }
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  /**
   * Whole lines only (a failed append is cut back), not synced: the trail is a record for people,
   * and the log carries the same line. Rolls before a line that would take the file past its cap.
   */
  #append(path: string, bytes: Uint8Array): void {
    if (this.#fd === null) {
      this.#fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
      this.#size = fstatSync(this.#fd).size;
    }
    if (this.#size > 0 && this.#size + bytes.length > this.#rotation.maxBytes) {
      this.close();
      this.#roll(path);
      this.#fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
      this.#size = 0;
    }
    appendFully(this.#fd, bytes, path, this.#size, false);
    this.#size += bytes.length;
  }

  /** `path.(files-1)` goes; each `path.k` becomes `path.(k+1)`; `path` becomes `path.1`. */
  #roll(path: string): void {
    const keep = Math.max(1, this.#rotation.files);
    rmSync(keep === 1 ? path : `${path}.${keep - 1}`, { force: true });
    for (let k = keep - 2; k >= 1; k--) {
      try {
        renameSync(`${path}.${k}`, `${path}.${k + 1}`);
      } catch (error) {
        if ((error as { code?: string }).code !== "ENOENT") throw error;
      }
    }
    if (keep > 1) renameSync(path, `${path}.1`);
  }
}
