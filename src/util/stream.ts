/** Reading a peer's byte stream without letting it decide how much memory that takes. */
import { base64Length } from "./base64.ts";

/**
 * The last `cap` bytes of `stream` as text, read to its end (so the writer never blocks on a
 * full pipe); what came before them is counted and dropped, not kept.
 */
export async function tailText(stream: ReadableStream<Uint8Array>, cap: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let held = 0;
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    held += value.length;
    while (held - chunks[0]!.length >= cap) held -= chunks.shift()!.length;
  }
  const all = new Uint8Array(held);
  let at = 0;
  for (const c of chunks) all.set(c, (at += c.length) - c.length);
  return new TextDecoder().decode(held > cap ? all.subarray(held - cap) : all);
}

/** `tailText`, reading a stream that fails (a killed child's pipe) as empty. */
export function quietTail(stream: ReadableStream<Uint8Array>, cap: number): Promise<string> {
  return tailText(stream, cap).catch(() => "");
}

/** The largest job result a `run-kernel` child sends back (as base64 on its stdout). */
export const CHILD_RESULT_BYTES = 16 * 1024 * 1024;

/** What the bridge keeps of a child's stderr: its last 64 KiB. */
export const CHILD_STDERR_CAP = 64 * 1024;

/** What the bridge keeps of a child's stdout: room for a result, plus the last 64 KiB of anything else. */
export const CHILD_OUTPUT_CAP = base64Length(CHILD_RESULT_BYTES) + CHILD_STDERR_CAP;
