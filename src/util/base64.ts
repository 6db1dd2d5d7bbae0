/** Strict standard base64 (padded), as the VM's receiver decodes it. */
import { Buffer } from "node:buffer";

// Linear on purpose: a nested repeated group gives up on multi-megabyte inputs (job payloads
// reach 16 MiB) and would call valid base64 invalid.
const ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard padded base64 of `data` (a string is encoded as UTF-8 first). */
export function encodeBase64(data: string | Uint8Array): string {
  return typeof data === "string" ? Buffer.from(data, "utf8").toString("base64") : Buffer.from(data).toString("base64");
}

/** Decodes strict padded base64, or returns null if `text` is not exactly that. */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0 || !ALPHABET.test(text)) return null;
  const buf = Buffer.from(text, "base64");
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}
