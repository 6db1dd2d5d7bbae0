/**
 * The VRAM audit trail: one JSON line per event (`{"ts":…,"event":"VramSealed",…}`) appended to
 * `vram-audit.jsonl` in the state folder, and the same line in the log. Events carry ids, sizes
 * and digests only: no pointer, key or token is ever handed to this module.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../util/log.ts";

export type AuditEvent =
  | "VramAllocated"
  | "VramAllocationFailed"
  | "VramSealed"
  | "SealVerified"
  | "SealVerificationFailed"
  | "VramDeallocated"
  | "PolicyViolation";

export class VramAudit {
  readonly #path: string | null;
  readonly #log: Logger;
  readonly #now: () => number;
  #warned = false;

  /** `path` null keeps the trail in the log only (tests). */
  constructor(path: string | null, log: Logger, now: () => number = Date.now) {
    this.#path = path;
    this.#log = log;
    this.#now = now;
    if (path !== null) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }

  record(event: AuditEvent, fields: Record<string, unknown>): void {
    const line = JSON.stringify({ ts: new Date(this.#now()).toISOString(), event, ...fields });
    const critical = fields.severity === "CRITICAL";
    if (critical || event === "PolicyViolation" || event === "VramAllocationFailed") this.#log.error(`audit ${line}`);
    else this.#log.info(`audit ${line}`);
    if (this.#path === null) return;
    try {
      appendFileSync(this.#path, line + "\n", { mode: 0o600 });
    } catch (error) {
      if (!this.#warned) this.#log.error(`Cannot append to the VRAM audit trail ${this.#path}: ${(error as Error).message}`);
      this.#warned = true;
    }
  }
}
