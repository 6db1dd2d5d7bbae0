/**
 * The one seam between the console client and a runtime: a connected byte stream. Each
 * runtime adapter (`src/runtime/bun.ts`, `src/runtime/deno.ts`) provides `connect`.
 */

/** A connected TCP stream with Nagle disabled. */
export interface Conn {
  /** Sends `bytes` in one write call; resolves once the runtime has taken all of them. */
  write(bytes: Uint8Array): Promise<void>;
  /** Incoming bytes; ends when the peer closes. */
  readonly readable: AsyncIterable<Uint8Array>;
  /** Closes the connection; safe to call twice. */
  close(): void;
}

/** Opens a connection; rejects with the runtime's error when it cannot. */
export type Connect = (host: string, port: number) => Promise<Conn>;
