import type { LinkSettings } from "./link.ts";

/**
 * Faults a test can script into the mock console; all are off by default and can change live.
 * The link settings (`latencyMs`, `jitterMs`, `lossPerChunk`) put a long wire in front of every
 * connection (link.ts).
 */
export interface Faults extends LinkSettings {
  /** Delay every ack by this many milliseconds. */
  ackDelayMs?: number;
  /** Interleave log-mirror noise, `PONG` and `END` before every ack. */
  noise?: boolean;
  /** Answer the Nth `ECHO` (counted across connections, from 1) with `ERR ECHO <detail>`, once. */
  errOnEcho?: { n: number; detail: string };
  /** Refuse every `ATTACH` with `ERR ATTACH <detail>`. */
  attachRefusal?: string;
  /** Close the connection, without acking, once this many more frames have arrived (once). */
  closeAfterFrames?: number;
  /** Send a frame with an impossible length header instead of the Nth ack from now (once). */
  garbageAfterFrames?: number;
  /**
   * Behave as an older or minimal console (the test consoles built around the reference bridge,
   * which only ever sends ECHO): `CAT` and `LS` are answered `ERR <VERB> reason=unsupported`, in
   * the contract's `ERR <VERB> <detail>` form; every other line as usual.
   */
  noReadback?: boolean;
  /**
   * Runs just before the console handles each line that came over a connection (`conn`, its
   * id): a test's other VM clients write here, between two lines of the bridge's, as a VM
   * serving several sessions may. Nothing the console does is more atomic than one line.
   */
  beforeLine?: (conn: number, line: string) => void;
  /** Never answer (acks are swallowed): a hung peer. */
  silent?: boolean;
  /**
   * Send every ack of these verbs twice (`["ECHO"]`: a console that repeats itself). Taken for the
   * next line's answer, the surplus would fake a publish; the bridge must end the attempt.
   */
  duplicateAcks?: readonly string[];
}
