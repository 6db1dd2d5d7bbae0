/** Strict standard base64 (padded), as the VM's receiver decodes it. */
import { Buffer } from "node:buffer";

const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard padded base64 of `data` (a string is encoded as UTF-8 first). */
export function encodeBase64(data: string | Uint8Array): string {
  return typeof data === "string" ? Buffer.from(data, "utf8").toString("base64") : Buffer.from(data).toString("base64");
}

/** Decodes strict padded base64, or returns null if `text` is not exactly that. */
export function decodeBase64(text: string): Uint8Array | null {
  if (!STRICT.test(text)) return null;
  const buf = Buffer.from(text, "base64");
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}
