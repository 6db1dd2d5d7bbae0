/** `tokens add NAME --role R [--workers P,...] --file FILE`: a new principal, its token printed once. */
import type { Command } from "../cli/options.ts";
import { addPrincipal } from "../api/tokens-file.ts";
import type { CommandIo } from "./types.ts";

/** Adds the principal; the token goes to stdout (and nowhere else), what was done to the log. */
export async function run(c: Extract<Command, { kind: "tokens-add" }>, io: CommandIo): Promise<number> {
  const { token } = addPrincipal(c.file, c.name, c.role, c.workers);
  await io.stdout(`${token}\n`);
  io.logger("info").info(
    `added principal ${c.name} (${c.role}${c.workers.length > 0 ? `, workers ${c.workers.join(", ")}` : ""}) to ${c.file}; ` +
      "its token is printed above and stored nowhere (the file keeps its SHA-256); send SIGHUP to a running bridge to load it",
  );
  return 0;
}
