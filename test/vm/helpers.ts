/** Shared set-up of the VM tests. */
import { type BridgeOptions, parseCommand } from "../../src/cli/options.ts";

/** `serve --mock --publish` against the mock console on `port` (token "tok"), plus `extra` flags. */
export function publishingServe(port: number, ...extra: string[]): BridgeOptions {
  const c = parseCommand(["serve", "--mock", "--publish", "--tcp-port", String(port), "--auth-token", "tok", ...extra], {});
  if (c.kind !== "serve") throw new Error(`Expected serve, parsed ${c.kind}`);
  return c.options;
}
