/**
 * The VM's `/gpu/bridge/ctl` receiver as a pure state machine (docs/protocol.md#8-the-console): `begin`
 * resets any pending transfer, `b64:` lines accumulate, `end` verifies and parses. The mock
 * console runs this; tests use it to prove publish lines land.
 */
import type { Namespace } from "../../src/contract/namespace.ts";
import { LIMITS } from "../../src/contract/limits.ts";
import { base64Length, decodeBase64 } from "../../src/util/base64.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { parseSnapshot, SnapshotParseError } from "./snapshot-parse.ts";

/** The outcome of one line: accepted (with the new tree after a good `end`) or refused. */
export type ReceiveResult =
  | { readonly ok: true; readonly tree?: Namespace }
  | { readonly ok: false; readonly reason: string };

interface Pending {
  readonly bytes: number;
  readonly sha256: string;
  readonly expectedB64: number;
  chunks: string[];
  received: number;
}

/** One receiver; `status` is the text of `/gpu/bridge/status`. */
export class CtlReceiver {
  #pending: Pending | null = null;
  #status = "state=idle";

  /** The current `/gpu/bridge/status` text. */
  get status(): string {
    return this.#status;
  }

  /** Feeds one echoed line. */
  accept(line: string): ReceiveResult {
    try {
      return this.#accept(line);
    } catch (error) {
      const reason = error instanceof ReceiveError || error instanceof SnapshotParseError ? error.message : String(error);
      this.#pending = null;
      this.#status = `state=err reason=${reason}`;
      return { ok: false, reason };
    }
  }

  #accept(line: string): ReceiveResult {
    if (line === "begin" || line.startsWith("begin ")) {
      this.#pending = null;
      this.#pending = parseBegin(line);
      this.#status = `state=receiving bytes=${this.#pending.bytes}`;
      return { ok: true };
    }
    if (line.startsWith("b64:")) {
      const p = this.#pending;
      if (p === null) throw new ReceiveError("b64 data before begin");
      const chunk = line.slice(4);
      if (p.received + chunk.length > p.expectedB64) {
        throw new ReceiveError(`b64 data beyond the expected ${p.expectedB64} characters`);
      }
      p.chunks.push(chunk);
      p.received += chunk.length;
      return { ok: true };
    }
    if (line === "end") {
      const p = this.#pending;
      if (p === null) throw new ReceiveError("end before begin");
      this.#pending = null;
      const bytes = decodeBase64(p.chunks.join(""));
      if (bytes === null) throw new ReceiveError("b64 data is not valid base64");
      if (bytes.length !== p.bytes) throw new ReceiveError(`length mismatch: expected ${p.bytes} bytes, got ${bytes.length}`);
      const digest = sha256Hex(bytes);
      if (digest !== p.sha256) throw new ReceiveError("sha256 mismatch");
      const tree = parseSnapshot(bytes);
      this.#status = `state=ok bytes=${p.bytes} sha256=${digest}`;
      return { ok: true, tree };
    }
    throw new ReceiveError(`unknown command ${JSON.stringify(line.split(" ")[0])}`);
  }
}

class ReceiveError extends Error {}

function parseBegin(line: string): Pending {
  let bytes: number | undefined;
  let sha256: string | undefined;
  for (const part of line.split(" ").slice(1)) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key === "bytes" && eq > 0 && bytes === undefined) {
      if (!/^[0-9]{1,7}$/.test(value)) throw new ReceiveError(`begin: bytes must be an integer, got ${JSON.stringify(value)}`);
      bytes = Number(value);
    } else if (key === "sha256" && eq > 0 && sha256 === undefined) {
      if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new ReceiveError("begin: sha256 must be 64 hex characters");
      sha256 = value.toLowerCase();
    } else {
      throw new ReceiveError(`begin: unknown field ${JSON.stringify(key)}`);
    }
  }
  if (bytes === undefined || sha256 === undefined) throw new ReceiveError("begin: needs bytes and sha256");
  if (bytes < 1 || bytes > LIMITS.snapshotBytes) {
    throw new ReceiveError(`begin: bytes must be 1-${LIMITS.snapshotBytes}, got ${bytes}`);
  }
  return { bytes, sha256, expectedB64: base64Length(bytes), chunks: [], received: 0 };
}
