/** Text from a byte stream. */

/**
 * All of `chunks` as one UTF-8 string, decoded as a stream: a character split across two
 * chunks (a pipe may cut anywhere) is decoded whole, not as two replacement characters.
 */
export async function readText(chunks: AsyncIterable<Uint8Array | string>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of chunks) text += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}
