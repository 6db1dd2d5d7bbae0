/**
 * The one door to cbor-x. It imports the pure-JavaScript, no-eval build on purpose: cbor-x's
 * Node entry loads the native `cbor-extract` addon when npm managed to compile it, and under
 * Bun that addon returns non-strings for UTF-8 text or aborts the process; a compiled binary
 * could not carry it anyway. Records are plain CBOR (no shared "record" structures), so every
 * encoded value decodes on its own.
 */
import { Encoder } from "cbor-x/index-no-eval";

export const cbor = new Encoder({ useRecords: false });

/** CBOR bytes of `value` (a fresh copy, not a view into the encoder's buffer). */
export function encodeCbor(value: unknown): Uint8Array {
  return new Uint8Array(cbor.encode(value));
}

/** The value in `bytes`; throws on malformed input. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return cbor.decode(bytes);
}
