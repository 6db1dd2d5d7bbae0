/**
 * Whether the console can read the VM's files back (`CAT`), learnt per connection. An older or
 * minimal console (the test consoles built around the reference bridge, which only ever sends
 * `ECHO`) refuses `CAT` and `LS` as `ERR CAT reason=unsupported`; retrying the read-back there
 * would never publish at all. Against such a console the bridge publishes as the reference does,
 * without read-back, says once what that loses, and probes again on every new connection.
 */
import { ConsoleError } from "./errors.ts";
import type { Logger } from "../util/log.ts";

/** What the current connection's console does with read-back; `unknown` until it has answered one. */
export type ReadbackMode = "unknown" | "supported" | "unsupported";

/**
 * Refusal reasons that mean this console will not read back for the bridge, whatever the file
 * or the moment: `unsupported` (an older console), `unknown-command` (one that knows no such
 * verb), and `policy` or `permission` (reading is not granted to the queen). Retrying those would
 * never publish. `not-found` is an answer of a console that reads back, and a refusal carrying
 * `delay_ms` (busy, quota) asks for a retry.
 */
const CANNOT_READ: ReadonlySet<string> = new Set(["unsupported", "unknown-command", "policy", "permission"]);

/** Whether `error` is the console refusing `verb` for good: a verb it lacks, or one it does not grant. */
export function lacksVerb(error: unknown, verb: string): boolean {
  return error instanceof ConsoleError && error.kind === "rejected" && error.ack?.verb === verb &&
    CANNOT_READ.has(error.ack.fields.reason ?? "") && error.ack.fields.delay_ms === undefined;
}

/** The read-back mode of the publisher's connections; the VM sync consults it before reading. */
export class ReadbackProbe {
  readonly #log: Logger;
  #mode: ReadbackMode = "unknown";
  #session: object | null = null;
  /** The loss was told and read-back has not worked since: said once, not per connection. */
  #warned = false;

  constructor(log: Logger) {
    this.#log = log;
  }

  get mode(): ReadbackMode {
    return this.#mode;
  }

  /** Before reading back over `session`: false when its console cannot. A new connection is probed afresh. */
  usable(session: object): boolean {
    if (session !== this.#session) {
      this.#session = session;
      this.#mode = "unknown";
    }
    return this.#mode !== "unsupported";
  }

  /** The console answered a read (the file's lines, or `not-found`): it reads back. */
  answered(): void {
    if (this.#mode === "supported") return;
    this.#mode = "supported";
    if (this.#warned) this.#log.info("the console reads the VM's files back again: the VM's own lines are kept in every snapshot");
    this.#warned = false;
  }

  /**
   * Whether `error` (a read's failure) says the console cannot read back; if so this connection
   * publishes without read-back from now on, and the loss is told once.
   */
  refused(error: unknown): boolean {
    if (!lacksVerb(error, "CAT")) return false;
    this.#mode = "unsupported";
    if (!this.#warned) {
      this.#warned = true;
      const ack = (error as ConsoleError).ack!;
      this.#log.warn(
        `the console cannot read the VM's files back (ERR CAT ${ack.detail}): publishing without read-back, as the ` +
          `reference bridge does. Each snapshot replaces /gpu/<id>/ctl, lease and status whole, so lines the VM's ` +
          `own clients write there (leases the Queen grants, breadcrumbs, control lines) are lost and never reach ` +
          `the bridge. Read-back is probed again on every new connection.`,
      );
    }
    return true;
  }
}
