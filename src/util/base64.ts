/**
 * Strict standard base64 (padded), as the VM's receiver decodes it, from the runtime: Bun and
 * Deno both have `Uint8Array.fromBase64` and `toBase64` (TC39 "Uint8Array to/from base64").
 */
import { encodeLossless } from "./bytes.ts";

/** The TC39 base64 methods, until TypeScript's own lib declares them. */
interface Base64Uint8Array {
  fromBase64(text: string, options: { alphabet?: "base64"; lastChunkHandling: "strict" }): Uint8Array;
}
interface WithToBase64 {
  toBase64(): string;
}
const U8 = Uint8Array as unknown as Base64Uint8Array;

// The runtime's decoder skips ASCII whitespace; the VM's does not, so the alphabet is checked
// first. Linear on purpose: a nested repeated group gives up on multi-megabyte inputs (job
// payloads reach 16 MiB) and would call valid base64 invalid.
const ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;

/** The length of the padded base64 of `bytes` bytes. */
export function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

/**
 * Standard padded base64 of `data` (a string is encoded as UTF-8 first, bytes a VM line held
 * outside UTF-8 as themselves: src/util/bytes.ts).
 */
export function encodeBase64(data: string | Uint8Array): string {
  const bytes = typeof data === "string" ? encodeLossless(data) : data;
  return (bytes as unknown as WithToBase64).toBase64();
}

/**
 * Decodes strict padded base64, or returns null if `text` is not exactly that: padding
 * required, no whitespace, and the unused bits of the last character zero (`QR==` is refused).
 */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0 || !ALPHABET.test(text)) return null;
  try {
    return U8.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    return null;
  }
}
