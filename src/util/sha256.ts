/** SHA-256 helpers over node:crypto, which Bun and Deno both provide synchronously. */
import * as nodeCrypto from "node:crypto";

/** The one-shot `crypto.hash` where the runtime has it (Bun, Deno, Node 21.7+): no Hash object per call. */
const oneShot = (nodeCrypto as { hash?: (alg: string, data: string | Uint8Array, enc: "hex") => string }).hash;

/** Lowercase hex SHA-256 of `data` (a string is hashed as UTF-8). */
export function sha256Hex(data: string | Uint8Array): string {
  return oneShot !== undefined ? oneShot("sha256", data, "hex") : nodeCrypto.createHash("sha256").update(data).digest("hex");
}
