/** Ending what was started, newest first, whatever fails along the way. */
import { errorText } from "./error-text.ts";
import type { Logger } from "./log.ts";

/**
 * The parts a step started, ended newest first. A part that fails to end is logged with its
 * cause and the others still end, so one stuck part never keeps the rest running.
 */
export class Teardown {
  readonly #parts: { what: string; end: () => unknown }[] = [];

  /** Registers how to end `what` (named in the log should ending it fail). */
  add(what: string, end: () => unknown): void {
    this.#parts.push({ what, end });
  }

  /** Ends every part registered, newest first; `when` says why in a failure's log line. */
  async run(log: Logger, when: string): Promise<void> {
    for (let part = this.#parts.pop(); part !== undefined; part = this.#parts.pop()) {
      try {
        await part.end();
      } catch (error) {
        log.error(`Cannot stop ${part.what} ${when}: ${errorText(error)}`);
      }
    }
  }
}
