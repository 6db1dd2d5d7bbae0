/** Request bodies: content-type checks (415), a byte cap (413), JSON parsing (400). */
import { BODY_LIMIT } from "../config/limits.ts";
import { concatBytes } from "../util/bytes.ts";
import { ApiError } from "./errors.ts";
import { checkJson, StrictInputError } from "../util/strict-input.ts";

export { BODY_LIMIT };

/** The body's bytes, refusing more than `limit` without reading past it. */
export async function readBody(req: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(declared, limit);
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw tooLarge(total, limit);
    }
    chunks.push(value);
  }
  return concatBytes(chunks);
}

function tooLarge(size: number, limit: number): ApiError {
  return new ApiError(413, "too_large", `Request body of ${size} bytes is over the ${limit}-byte limit`);
}

/** The media type of the request, lowercased, without parameters. */
export function mediaType(req: Request): string {
  return (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

/** Refuses a body whose media type is not one of `allowed`. */
export function requireType(req: Request, ...allowed: string[]): string {
  const type = mediaType(req);
  if (!allowed.includes(type)) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type must be ${allowed.join(" or ")}, got ${JSON.stringify(type || "(none)")}`,
    );
  }
  return type;
}

/** A JSON body under `limit` bytes. */
export async function readJson(req: Request, limit = BODY_LIMIT): Promise<unknown> {
  requireType(req, "application/json");
  const bytes = await readBody(req, limit);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    checkJson(text);
    return JSON.parse(text);
  } catch (error) {
    const what = error instanceof StrictInputError ? "Request body is refused" : "Request body is not valid JSON";
    throw new ApiError(400, "bad_json", `${what}: ${(error as Error).message}`);
  }
}
