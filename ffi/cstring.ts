/** Text that a native library wrote into a buffer the façade owns. */

const decoder = new TextDecoder();

/**
 * The UTF-8 text in `buf` up to its first NUL; all of `buf` if it holds none (a library that
 * filled the buffer exactly: its last byte is text, not a terminator).
 */
export function cText(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return decoder.decode(end < 0 ? buf : buf.subarray(0, end));
}
