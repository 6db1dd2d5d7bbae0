/**
 * The bridge's command line (contract section 1, plus our own flags). Pure: argv and the
 * environment in, a typed command out.
 */
import { type FlagTable, type FlagValues, parseFlags, UsageError } from "./flags.ts";
import { DEFAULT_WINDOW, MAX_WINDOW } from "../console/window.ts";
import { DEFAULT_READBACK_MS } from "../vm/limits.ts";

export const DEFAULT_TCP_HOST = "127.0.0.1";
export const DEFAULT_TCP_PORT = 31337;
export const DEFAULT_AUTH_TOKEN = "changeme";

export type BackendName = "auto" | "nvml" | "cuda" | "jetson" | "mock";

/** Options of the bridge itself (`--list`, `--publish`, the daemon). */
export interface BridgeOptions {
  readonly mock: boolean;
  readonly backend: BackendName;
  readonly sysRoot: string;
  readonly registry: string | undefined;
  readonly list: boolean;
  readonly publish: boolean;
  readonly intervalMs: number | undefined;
  readonly tcpHost: string;
  readonly tcpPort: number;
  readonly authToken: string;
  readonly ticket: string;
  readonly ackTimeoutMs: number;
  /** Console lines in flight before their acks (1: stop-and-wait). */
  readonly window: number;
  readonly logLevel: LogLevelName;
  /** Where leases are journalled (and the API token lives). */
  readonly stateDir: string;
  /** Where staged job inputs and outputs live; undefined: jobs must carry payload_b64. */
  readonly bundleDir: string | undefined;
  readonly runner: "auto" | "cpu" | "cuda";
  readonly maxStreamsPerGpu: number;
  /** The device id telemetry is filed under at the Queen (default: the host name). */
  readonly deviceId: string | undefined;
  readonly spoolMaxBytes: number;
  readonly queenSegmentBytes: number;
  /** Where the API listens (serve and the daemon); null: no API. */
  readonly listen: { readonly host: string; readonly port: number } | null;
  readonly apiToken: string | undefined;
  /** Idle read-back of the VM's node files, every MS (0: only before full snapshots). */
  readonly readbackMs: number;
}

export type LogLevelName = "debug" | "info" | "warn" | "error";

/** Options of `mock-console`. */
export interface MockConsoleOptions {
  readonly host: string;
  readonly port: number;
  readonly authToken: string;
  readonly ackDelayMs: number;
  /** The link's round trip, half of it each way. */
  readonly rttMs: number;
  readonly jitterMs: number;
  readonly noise: boolean;
  readonly logLevel: LogLevelName;
}

export type Command =
  | { readonly kind: "help"; readonly topic?: string }
  | { readonly kind: "version" }
  | { readonly kind: "bridge"; readonly options: BridgeOptions; readonly warnings: readonly string[] }
  | { readonly kind: "mock-console"; readonly options: MockConsoleOptions }
  | { readonly kind: "serve"; readonly options: BridgeOptions; readonly warnings: readonly string[] }
  | { readonly kind: "stats"; readonly options: StatsOptions }
  | { readonly kind: "run-kernel" }
  | { readonly kind: "telemetry-push"; readonly file: string; readonly url: string; readonly apiToken: string | undefined; readonly stateDir: string }
  | { readonly kind: "telemetry-export"; readonly out: string; readonly sinceMs: number | undefined; readonly stateDir: string }
  | {
    readonly kind: "models-import";
    readonly bundle: string;
    readonly id: string;
    readonly registry: string;
    readonly parent: string | undefined;
    readonly jobId: string | undefined;
    readonly approval: "pending" | "approved" | "rejected" | undefined;
  };

/** Options of `stats`. */
export interface StatsOptions {
  readonly mock: boolean;
  readonly backend: BackendName;
  readonly sysRoot: string;
  readonly json: boolean;
  readonly logLevel: LogLevelName;
}

const INVENTORY_FLAGS: FlagTable = {
  "mock": "bool",
  "backend": "choice:auto|nvml|cuda|jetson|mock",
  "sys-root": "string",
};

const BRIDGE_FLAGS: FlagTable = {
  ...INVENTORY_FLAGS,
  "registry": "string",
  "list": "bool",
  "publish": "bool",
  "interval-ms": "int:1:2147483647",
  "tcp-host": "string",
  "tcp-port": "int:1:65535",
  "auth-token": "string:blank",
  "ticket": "string:blank",
  "ack-timeout-ms": "int:1:600000",
  "window": `int:1:${MAX_WINDOW}`,
  "log-level": "choice:debug|info|warn|error",
  "state-dir": "string",
  "bundle-dir": "string",
  "runner": "choice:auto|cpu|cuda",
  "max-streams-per-gpu": "int:1:1024",
  "device-id": "string",
  "spool-max-mb": "int:1:1048576",
  "queen-segment-kb": "int:1:1048576",
  "listen": "string",
  "no-api": "bool",
  "allow-remote": "bool",
  "api-token": "string",
  "readback-ms": "int:0:3600000",
  "help": "bool",
  "version": "bool",
};

const MOCK_CONSOLE_FLAGS: FlagTable = {
  "host": "string",
  "port": "int:0:65535",
  "auth-token": "string:blank",
  "ack-delay-ms": "int:0:600000",
  "rtt-ms": "int:0:600000",
  "jitter-ms": "int:0:600000",
  "noise": "bool",
  "log-level": "choice:debug|info|warn|error",
  "help": "bool",
};

/** Parses the command line; throws UsageError for anything the bridge refuses. */
export function parseCommand(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  if (argv[0] === "mock-console") return mockConsoleCommand(argv.slice(1), env);
  if (argv[0] === "serve") return serveCommand(argv.slice(1), env);
  if (argv[0] === "stats") return statsCommand(argv.slice(1));
  if (argv[0] === "telemetry") return telemetryCommand(argv.slice(1), env);
  if (argv[0] === "models") return modelsCommand(argv.slice(1));
  // Internal: the per-job child process of the runners (a request on stdin, a result on stdout).
  if (argv[0] === "run-kernel" && argv.length === 1) return { kind: "run-kernel" };
  const { values, positionals } = parseFlags(argv, BRIDGE_FLAGS);
  if (values.help === true) return { kind: "help" };
  if (values.version === true) return { kind: "version" };
  if (positionals.length > 0) {
    throw new UsageError(`Unknown command or argument ${JSON.stringify(positionals[0])} (commands: serve, stats, telemetry, models, mock-console, console)`);
  }
  return bridgeCommand(values, env);
}

function mockConsoleCommand(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  const { values, positionals } = parseFlags(argv, MOCK_CONSOLE_FLAGS);
  if (values.help === true) return { kind: "help", topic: "mock-console" };
  if (positionals.length > 0) throw new UsageError(`mock-console: unexpected argument ${JSON.stringify(positionals[0])}`);
  return {
    kind: "mock-console",
    options: {
      host: (values.host as string | undefined) ?? DEFAULT_TCP_HOST,
      port: (values.port as number | undefined) ?? DEFAULT_TCP_PORT,
      authToken: resolveAuthToken(values["auth-token"] as string | undefined, env),
      ackDelayMs: (values["ack-delay-ms"] as number | undefined) ?? 0,
      rttMs: (values["rtt-ms"] as number | undefined) ?? 0,
      jitterMs: (values["jitter-ms"] as number | undefined) ?? 0,
      noise: values.noise === true,
      logLevel: (values["log-level"] as LogLevelName | undefined) ?? "info",
    },
  };
}

function telemetryCommand(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  const sub = argv[0];
  if (sub === "push") {
    const { values, positionals } = parseFlags(argv.slice(1), {
      "url": "string",
      "api-token": "string",
      "state-dir": "string",
      "help": "bool",
    });
    if (values.help === true) return { kind: "help", topic: "telemetry" };
    if (positionals.length !== 1) throw new UsageError("telemetry push needs one FILE of NDJSON records (- for stdin)");
    return {
      kind: "telemetry-push",
      file: positionals[0]!,
      url: (values.url as string | undefined) ?? `http://${DEFAULT_LISTEN.host}:${DEFAULT_LISTEN.port}`,
      apiToken: values["api-token"] as string | undefined,
      stateDir: (values["state-dir"] as string | undefined) ?? defaultStateDir(env),
    };
  }
  if (sub === "export") {
    const { values, positionals } = parseFlags(argv.slice(1), {
      "out": "string",
      "since": "string",
      "state-dir": "string",
      "help": "bool",
    });
    if (values.help === true) return { kind: "help", topic: "telemetry" };
    if (positionals.length > 0) throw new UsageError(`telemetry export: unexpected argument ${JSON.stringify(positionals[0])}`);
    if (values.out === undefined) throw new UsageError("telemetry export needs --out FILE");
    let sinceMs: number | undefined;
    if (values.since !== undefined) {
      const raw = values.since as string;
      sinceMs = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
      if (Number.isNaN(sinceMs)) throw new UsageError(`Option --since needs epoch milliseconds or an RFC 3339 time, got ${JSON.stringify(raw)}`);
    }
    return {
      kind: "telemetry-export",
      out: values.out as string,
      sinceMs,
      stateDir: (values["state-dir"] as string | undefined) ?? defaultStateDir(env),
    };
  }
  if (sub === "--help" || sub === undefined) return { kind: "help", topic: "telemetry" };
  throw new UsageError(`Unknown telemetry command ${JSON.stringify(sub)} (push, export)`);
}

function modelsCommand(argv: readonly string[]): Command {
  if (argv[0] !== "import") {
    if (argv[0] === "--help" || argv[0] === undefined) return { kind: "help", topic: "models" };
    throw new UsageError(`Unknown models command ${JSON.stringify(argv[0])} (import)`);
  }
  const { values, positionals } = parseFlags(argv.slice(1), {
    "id": "string",
    "registry": "string",
    "parent": "string",
    "job-id": "string",
    "approval": "choice:pending|approved|rejected",
    "help": "bool",
  });
  if (values.help === true) return { kind: "help", topic: "models" };
  if (positionals.length !== 1) throw new UsageError("models import needs one DIR: the adapter bundle");
  if (values.id === undefined) throw new UsageError("models import needs --id ID");
  if (values.registry === undefined) throw new UsageError("models import needs --registry DIR");
  return {
    kind: "models-import",
    bundle: positionals[0]!,
    id: values.id as string,
    registry: values.registry as string,
    parent: values.parent as string | undefined,
    jobId: values["job-id"] as string | undefined,
    approval: values.approval as "pending" | "approved" | "rejected" | undefined,
  };
}

const STATS_FLAGS: FlagTable = {
  ...INVENTORY_FLAGS,
  "json": "bool",
  "log-level": "choice:debug|info|warn|error",
  "help": "bool",
};

function statsCommand(argv: readonly string[]): Command {
  const { values, positionals } = parseFlags(argv, STATS_FLAGS);
  if (values.help === true) return { kind: "help", topic: "stats" };
  if (positionals.length > 0) throw new UsageError(`stats: unexpected argument ${JSON.stringify(positionals[0])}`);
  return { kind: "stats", options: { ...inventoryOptions(values), json: values.json === true, logLevel: logLevel(values) } };
}

/** `--mock`, `--backend` and `--sys-root`; `--mock` is `--backend mock` and conflicts with any other. */
function inventoryOptions(values: FlagValues): { mock: boolean; backend: BackendName; sysRoot: string } {
  const backend = values.backend as BackendName | undefined;
  if (values.mock === true && backend !== undefined && backend !== "mock") {
    throw new UsageError(`Option --mock conflicts with --backend ${backend}`);
  }
  const chosen = values.mock === true ? "mock" : backend ?? "auto";
  return { mock: chosen === "mock", backend: chosen, sysRoot: (values["sys-root"] as string | undefined) ?? "/" };
}

function logLevel(values: FlagValues): LogLevelName {
  return (values["log-level"] as LogLevelName | undefined) ?? "info";
}

const { list: _list, version: _version, ...SERVE_FLAGS } = BRIDGE_FLAGS;

function serveCommand(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  const { values, positionals } = parseFlags(argv, SERVE_FLAGS);
  if (values.help === true) return { kind: "help", topic: "serve" };
  if (positionals.length > 0) throw new UsageError(`serve: unexpected argument ${JSON.stringify(positionals[0])}`);
  const { options, warnings } = bridgeOptions(values, env);
  return { kind: "serve", options, warnings };
}

function bridgeCommand(values: FlagValues, env: Readonly<Record<string, string | undefined>>): Command {
  if (values.list !== true && values.publish !== true) {
    throw new UsageError("Nothing to do: pass --list, --publish or both (see --help)");
  }
  return { kind: "bridge", ...bridgeOptions(values, env) };
}

function bridgeOptions(
  values: FlagValues,
  env: Readonly<Record<string, string | undefined>>,
): { options: BridgeOptions; warnings: string[] } {
  const warnings: string[] = [];
  const list = values.list === true;
  const publish = values.publish === true;
  const intervalMs = values["interval-ms"] as number | undefined;
  if (intervalMs !== undefined && !publish) warnings.push("--interval-ms has no effect without --publish");
  return {
    warnings,
    options: {
      ...inventoryOptions(values),
      registry: values.registry as string | undefined,
      list,
      publish,
      intervalMs,
      tcpHost: (values["tcp-host"] as string | undefined) ?? DEFAULT_TCP_HOST,
      tcpPort: (values["tcp-port"] as number | undefined) ?? DEFAULT_TCP_PORT,
      authToken: resolveAuthToken(values["auth-token"] as string | undefined, env),
      ticket: (values.ticket as string | undefined) ?? "",
      ackTimeoutMs: (values["ack-timeout-ms"] as number | undefined) ?? 5000,
      window: (values.window as number | undefined) ?? DEFAULT_WINDOW,
      logLevel: logLevel(values),
      stateDir: (values["state-dir"] as string | undefined) ?? defaultStateDir(env),
      bundleDir: values["bundle-dir"] as string | undefined,
      runner: (values.runner as "auto" | "cpu" | "cuda" | undefined) ?? "auto",
      maxStreamsPerGpu: (values["max-streams-per-gpu"] as number | undefined) ?? 16,
      deviceId: deviceId(values["device-id"] as string | undefined),
      spoolMaxBytes: ((values["spool-max-mb"] as number | undefined) ?? 256) * 1024 * 1024,
      queenSegmentBytes: ((values["queen-segment-kb"] as number | undefined) ?? 64) * 1024,
      listen: values["no-api"] === true ? null : parseListen(values, env),
      apiToken: values["api-token"] as string | undefined,
      readbackMs: (values["readback-ms"] as number | undefined) ?? DEFAULT_READBACK_MS,
    },
  };
}

/** A device id the Queen's paths can hold: 1-64 characters of A-Z a-z 0-9 . _ -. */
function deviceId(raw: string | undefined): string | undefined {
  if (raw !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(raw)) {
    throw new UsageError(`Option --device-id must be 1-64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

export const DEFAULT_LISTEN = { host: "127.0.0.1", port: 31338 };

/** `--listen HOST:PORT` (IPv6 as `[::1]:PORT`); anything but loopback needs --allow-remote and a token. */
function parseListen(values: FlagValues, env: Readonly<Record<string, string | undefined>>): { host: string; port: number } {
  const raw = values.listen as string | undefined;
  if (raw === undefined) return DEFAULT_LISTEN;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(raw);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) throw new UsageError(`Option --listen needs HOST:PORT (IPv6 as [::1]:PORT), got ${JSON.stringify(raw)}`);
  const host = (m[1] ?? m[2])!;
  if (!isLoopback(host)) {
    if (values["allow-remote"] !== true) {
      throw new UsageError(`Option --listen ${raw} is not a loopback address; pass --allow-remote to expose the API beyond this host`);
    }
    if (values["api-token"] === undefined && !env.GPU_BRIDGE_API_TOKEN?.trim()) {
      throw new UsageError(`Option --listen ${raw} with --allow-remote needs an explicit --api-token or GPU_BRIDGE_API_TOKEN`);
    }
  }
  return { host, port };
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** `$XDG_STATE_HOME/gpu-bridge-host`, else `~/.local/state/gpu-bridge-host`. */
export function defaultStateDir(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env.XDG_STATE_HOME?.trim();
  if (xdg) return `${xdg.replace(/\/+$/, "")}/gpu-bridge-host`;
  return `${env.HOME?.trim() || "/var/lib"}/.local/state/gpu-bridge-host`;
}

/**
 * The console token: the flag unless absent or blank, then `COH_AUTH_TOKEN`, then
 * `COHSH_AUTH_TOKEN` (each trimmed, ignored if blank), then `changeme`.
 */
export function resolveAuthToken(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  if (flag !== undefined && flag.trim() !== "") return flag;
  return env.COH_AUTH_TOKEN?.trim() || env.COHSH_AUTH_TOKEN?.trim() || DEFAULT_AUTH_TOKEN;
}

export { UsageError };
