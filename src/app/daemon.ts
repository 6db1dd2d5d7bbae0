/**
 * The long-running bridge: `createBridge` wires it, the API serves it, and SIGINT/SIGTERM end
 * it cleanly (exit 0 within 2 s).
 */
import { StateDirError } from "../util/state-dir.ts";
import process from "node:process";
import type { BridgeOptions } from "../cli/options.ts";
import type { InventoryBackend } from "../inventory/types.ts";
import type { Runtime } from "../runtime/types.ts";
import type { Logger } from "../util/log.ts";
import { stopSignal } from "../util/signals.ts";
import { type Bridge, createBridge } from "./bridge.ts";

/** Runs the daemon (and its API, unless --no-api) until SIGINT or SIGTERM; resolves with exit status 0. */
export async function runDaemon(
  options: BridgeOptions,
  deps: { readonly runtime: Runtime; readonly log: Logger; readonly backend: InventoryBackend },
  mode: "serve" | "compat",
  // Handlers first (the caller installs them before loading this module): a signal that lands
  // while the daemon is still starting must still end in a clean exit 0, not death by signal.
  signal: Promise<string> = stopSignal(),
): Promise<number> {
  if (options.listen !== null) {
    // Known before anything is logged: a registry or peer that echoes the API token (a file
    // named as `active`, say) must find it masked.
    const { findApiToken } = await import("../api/auth.ts");
    const found = findApiToken(options.apiToken, process.env, options.stateDir);
    if (found !== null) deps.log.addSecret?.(found.token);
  }
  const daemon = await createBridge(options, deps);
  let api: { close(): Promise<void> } | null = null;
  if (options.listen !== null) {
    try {
      api = await startApi(options, daemon, deps);
    } catch (error) {
      // The token file is in the state folder: that error names --state-dir, not --listen.
      if (error instanceof StateDirError) {
        await daemon.stop();
        throw error;
      }
      const why = `Cannot serve the API on ${options.listen.host}:${options.listen.port}: ${(error as Error).message}`;
      if (mode === "serve") {
        await daemon.stop();
        throw new Error(`${why}; pick another with --listen HOST:PORT, or --no-api`);
      }
      deps.log.warn(`${why}; publishing carries on without it`);
    }
  }
  deps.log.info(`${await signal}: stopping`);
  // Belt and braces: the stop below abandons in-flight work at once, but never outlive 2 s.
  const force = setTimeout(() => process.exit(0), 1900);
  await api?.close();
  await daemon.stop();
  clearTimeout(force);
  deps.log.info("stopped");
  return 0;
}

/** Serves the API for `bridge`; logs where, and where the token is (never the token). */
export async function startApi(
  options: BridgeOptions,
  bridge: Bridge,
  deps: { readonly runtime: Runtime; readonly log: Logger },
): Promise<{ port: number; token: string; close(): Promise<void> }> {
  const [{ createApp }, { resolveApiToken }, { allowedHosts }] = await Promise.all([
    import("../api/app.ts"),
    import("../api/auth.ts"),
    import("../api/host-check.ts"),
  ]);
  const log = deps.log.child("api");
  // With a tokens file the principals replace the single token (which is then neither read nor made).
  const tenancy = options.tokensFile === undefined ? null : await import("../api/principals.ts");
  const guard = tenancy === null ? undefined : new tenancy.PrincipalGuard(options.tokensFile!);
  let token = "";
  let where: string;
  if (guard !== undefined) {
    where = `${guard.principals.length} principals from ${guard.path}; SIGHUP reloads it`;
  } else {
    const { token: t, source } = resolveApiToken(options.apiToken, process.env, options.stateDir);
    token = t;
    deps.log.addSecret?.(token);
    where = source.kind === "file"
      ? `token in ${source.path}${source.created ? " (new)" : ""}`
      : `token from ${source.kind === "flag" ? "--api-token" : "GPU_BRIDGE_API_TOKEN"}`;
  }
  const app = createApp({
    token,
    log,
    bridge,
    allowedHosts: allowedHosts(options.listen!.host),
    ...(guard && { principals: guard }),
    settings: maskedSettings(options),
    changes: bridge.changes,
  });
  const listen = options.listen!;
  const server = await deps.runtime.serve(listen.host, listen.port, app.fetch);
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  log.info(`listening on http://${host}:${server.port} (${where})`);
  // The new principals apply to the next request; open connections (event streams) stay open.
  const onHangup = guard === undefined ? null : () => tenancy!.reloadPrincipals(guard, bridge.changes, log);
  if (onHangup !== null) process.on("SIGHUP", onHangup);
  return {
    port: server.port,
    token,
    close: () => {
      if (onHangup !== null) process.off("SIGHUP", onHangup);
      return server.close();
    },
  };
}

/** The options as `GET /v1/config` shows them: every setting, the tokens masked (the API's and the console's). */
export function maskedSettings(options: BridgeOptions): Readonly<Record<string, unknown>> {
  return {
    ...options,
    authToken: "(hidden)",
    apiToken: options.apiToken === undefined ? null : "(hidden)",
    tokensFile: options.tokensFile ?? null,
    configFile: options.configFile ?? null,
  };
}
