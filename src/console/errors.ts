/** Console errors, one class whose `kind` callers branch on. */
import type { Ack } from "../contract/ack.ts";

export type ConsoleErrorKind =
  | "refused" // the TCP connection was refused or could not be made
  | "closed" // the server closed the connection
  | "timeout" // no ack before the deadline
  | "rejected" // the server answered ERR
  | "protocol"; // the byte stream broke the framing rules

/** A failure talking to the Cohesix console. */
export class ConsoleError extends Error {
  override name = "ConsoleError";
  readonly kind: ConsoleErrorKind;
  /** The refusal, for `rejected`. */
  readonly ack?: Ack;

  constructor(kind: ConsoleErrorKind, message: string, options?: { cause?: unknown; ack?: Ack }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    if (options?.ack !== undefined) this.ack = options.ack;
  }
}
