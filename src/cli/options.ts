/**
 * The bridge's command line (docs/protocol.md#1-command-line, plus our own flags). Pure: argv and the
 * environment in, a typed command out. Each command's flags are one typed table (flags.ts);
 * every default comes from defaults.ts, and the help text (usage.ts) is generated from both.
 */
import {
  type Approval,
  type Backend,
  type ConsoleRole,
  DEFAULTS,
  JOB_KERNELS,
  type JobKernel,
  type LogFormat,
  type LogLevel,
  type RunnerKind,
  type VerifyMode,
} from "../config/defaults.ts";
import { type CdiCommand, parseCdiCommand } from "./cdi.ts";
import { type FlagValues, parseFlags, UsageError } from "./flags.ts";
import { isSafeId, SAFE_ID_RULE } from "../contract/ids.ts";
import { MAX_WINDOW } from "../contract/window.ts";
import { MAX_LEASE_MEM_MB, MAX_STREAMS, MAX_TTL_S } from "../config/limits.ts";
import { apiTokenProblem } from "../util/api-token.ts";

export type { Approval, Backend, CdiCommand, LogFormat, LogLevel, RunnerKind };

/** The shells `completion` writes a script for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** Options of the bridge itself (`--list`, `--publish`, the daemon). */
export interface BridgeOptions {
  readonly backend: Backend;
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
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Where leases are journalled (and the API token lives). */
  readonly stateDir: string;
  /** Where staged job inputs and outputs live; undefined: jobs must carry payload_b64. */
  readonly bundleDir: string | undefined;
  readonly runner: RunnerKind;
  readonly maxStreamsPerGpu: number;
  /** Result bytes kept for the API, all finished jobs together (src/job/retention.ts). */
  readonly jobResultsBytes: number;
  /** How long a finished job's result is kept. */
  readonly jobResultsAgeMs: number;
  /** The device id telemetry is filed under at the Queen (default: the host name). */
  readonly deviceId: string | undefined;
  readonly spoolMaxBytes: number;
  readonly queenSegmentBytes: number;
  /** Where the API listens (serve and the daemon); null: no API. */
  readonly listen: { readonly host: string; readonly port: number } | null;
  readonly apiToken: string | undefined;
  /** serve --tokens: the tokens file of named principals (src/api/tokens-file.ts); undefined: the single API token. */
  readonly tokensFile?: string | undefined;
  /** `--config FILE`, when the settings came partly from one. */
  readonly configFile?: string | undefined;
  /** serve --cdi-dir: where the bridge keeps its CDI spec; undefined: no spec. */
  readonly cdiDir?: string | undefined;
  /** serve --cdi-root: where device nodes and driver files are read for that spec; undefined: DEFAULTS.cdiRoot. */
  readonly cdiRoot?: string | undefined;
  /** serve --mps: an MPS control daemon per GPU, and each lease's CDI device an MPS client capped at its terms. */
  readonly mps?: boolean;
  /** Idle read-back of the VM's node files, every MS (0: only before full snapshots). */
  readonly readbackMs: number;
  /** serve --seal-active: the lease every adapter activation seals its weights under (docs/models.md). */
  readonly sealActive?: string | undefined;
  /** The audit trail (docs/audit.md): how lines reach the disk, file size, files kept; absent: DEFAULTS. */
  readonly auditFsync?: "record" | "batch";
  readonly auditFileBytes?: number;
  readonly auditFiles?: number;
  /** A sealed shard's execute-check needs a verification newer than this (src/vram/execute-check.ts). */
  readonly verifyMaxAgeMs: number;
  /** serve --kubelet-dir / --k8s: the Kubernetes device plugin; undefined: off. */
  readonly k8s?: K8sOptions | undefined;
  // The lease policy (src/lease/policy.ts): the maxima every grant is held to, whoever asks,
  // and the terms a request may leave out (null: it must give them).
  readonly maxTtlS: number;
  readonly maxLeaseMemMb: number | null;
  readonly maxLeaseStreams: number;
  readonly leaseMemMb: number | null;
  readonly leaseStreams: number | null;
  readonly leaseTtlS: number;
  /** How sealed shards are checked before each job (`--verify-mode`, else $GPU_BRIDGE_VRAM_GATE). */
  readonly verifyMode: VerifyMode;
  /** One whole shard verified every MS in the background; 0: none (`--verify-sweep-ms`, else $GPU_BRIDGE_VRAM_SWEEP_MS). */
  readonly verifySweepMs: number;
  /** The kinds of job this bridge runs (`--allowed-kernels`). */
  readonly allowedKernels: readonly JobKernel[];
}

/** The device plugin's settings (src/k8s). */
export interface K8sOptions {
  readonly kubeletDir: string;
  /** The extended resource advertised (`--k8s-resource`, e.g. cohesix.io/gpu). */
  readonly resource: string;
  /** Devices per GPU (`--k8s-share`; 1: whole GPUs). */
  readonly share: number;
  readonly pollMs: number;
  readonly recoverMs: number;
  readonly ignoredXids: readonly number[];
  /** The Node Feature Discovery file; null: none written. */
  readonly nfdFile: string | null;
}

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
  /** Behave as an older console: `CAT` and `LS` answered `ERR <VERB> reason=unsupported`. */
  readonly noReadback: boolean;
  /** The mock Queen's export policy: records of one base model, within this many seconds. */
  readonly exportMinRecords: number;
  readonly exportWindowS: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

/** One `console` request (`ls`, `cat` or `echo`), as cohsh sends it. */
export interface ConsoleRequest {
  readonly verb: "LS" | "CAT" | "ECHO";
  readonly path: string;
  /** The line `echo` appends (its words joined by spaces); empty otherwise. */
  readonly line: string;
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly role: ConsoleRole;
  readonly ticket: string;
  readonly ackTimeoutMs: number;
  /** Print the VM's bytes as they are; otherwise control and bidi characters are shown escaped. */
  readonly raw: boolean;
}

/** `peft export`: the console to pull from, the job (newest if absent), where to write it. */
export interface PeftExportRequest {
  readonly out: string;
  readonly job: string | undefined;
  readonly force: boolean;
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly ticket: string;
  readonly ackTimeoutMs: number;
}

/** Options of `doctor`. */
export interface DoctorCliOptions {
  readonly backend: Backend;
  readonly sysRoot: string;
  readonly devRoot: string;
  readonly stateDir: string;
  readonly spoolMaxBytes: number;
  /** The console to probe (AUTH and ATTACH), only when --tcp-port or --auth-token was given. */
  readonly console: { readonly host: string; readonly port: number; readonly token: string; readonly ticket: string } | null;
  readonly timeoutMs: number;
  readonly json: boolean;
}

/** Options of `stats`. */
export interface StatsOptions {
  readonly backend: Backend;
  readonly sysRoot: string;
  readonly json: boolean;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

export type Command =
  | { readonly kind: "help"; readonly topic?: string }
  | { readonly kind: "version" }
  | { readonly kind: "bridge"; readonly options: BridgeOptions; readonly warnings: readonly string[]; readonly config?: ConfigSource }
  | { readonly kind: "mock-console"; readonly options: MockConsoleOptions }
  | { readonly kind: "console"; readonly request: ConsoleRequest }
  | { readonly kind: "peft-export"; readonly request: PeftExportRequest }
  | { readonly kind: "serve"; readonly options: BridgeOptions; readonly warnings: readonly string[]; readonly config?: ConfigSource }
  | { readonly kind: "config-check"; readonly file: string }
  | { readonly kind: "stats"; readonly options: StatsOptions }
  | { readonly kind: "doctor"; readonly options: DoctorCliOptions; readonly secrets: readonly string[] }
  | { readonly kind: "run-kernel" }
  | { readonly kind: "completion"; readonly shell: Shell }
  | {
    readonly kind: "telemetry-push";
    readonly file: string;
    readonly url: string;
    readonly apiToken: string | undefined;
    readonly stateDir: string;
  }
  | { readonly kind: "telemetry-export"; readonly out: string; readonly sinceMs: number | undefined; readonly stateDir: string }
  | { readonly kind: "audit-verify"; readonly dir: string; readonly json: boolean }
  | {
    readonly kind: "models-import";
    readonly bundle: string;
    readonly id: string;
    readonly registry: string;
    readonly parent: string | undefined;
    readonly jobId: string | undefined;
    readonly approval: Approval | undefined;
    readonly fromExport: string | undefined;
  }
  | { readonly kind: "models-verify"; readonly id: string | undefined; readonly registry: string; readonly json: boolean }
  | { readonly kind: "models-watch"; readonly exec: string; readonly url: string; readonly apiToken: string | undefined }
  | {
    readonly kind: "tokens-add";
    readonly name: string;
    readonly role: "reader" | "operator" | "admin";
    readonly workers: readonly string[];
    readonly file: string;
  }
  | CdiCommand;

type Env = Readonly<Record<string, string | undefined>>;

/** `--config FILE` and the command line's own flags, which override the file (see `withConfig`). */
export interface ConfigSource {
  readonly file: string;
  readonly argv: readonly string[];
}

/** The commands a user names first (the bridge itself takes flags only); catalog.ts describes each. */
export const COMMAND_NAMES = [
  "serve",
  "stats",
  "doctor",
  "telemetry",
  "models",
  "peft",
  "audit",
  "tokens",
  "config",
  "mock-console",
  "console",
  "cdi",
  "completion",
] as const;

// The tables: `as const` keeps each spec's literal type, from which parseFlags types the values.
// Each is a function, built only when its command is parsed: a table at the top level would be
// built at every start, `--list` included.
export const inventoryFlags = () => ({
  "mock": "bool",
  "backend": "choice:auto|nvml|cuda|jetson|mock",
  "sys-root": "string",
} as const);

/** `--spool-max-mb` (serve and doctor): the telemetry spool's cap, in MiB. */
const SPOOL_MAX_MB = "int:1:1048576";
const spoolMaxBytes = (mb: number | undefined): number => (mb ?? DEFAULTS.spoolMaxMb) * 1024 * 1024;

export const bridgeFlags = () => ({
  ...inventoryFlags(),
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
  "log-format": "choice:text|json",
  "state-dir": "string",
  "bundle-dir": "string",
  "runner": "choice:auto|cpu|cuda",
  "max-streams-per-gpu": `int:1:${MAX_STREAMS}`,
  "job-results-mb": "int:0:1048576",
  "job-results-age-s": "int:0:604800",
  "device-id": "string",
  "spool-max-mb": SPOOL_MAX_MB,
  "queen-segment-kb": "int:1:1048576",
  "listen": "string",
  "no-api": "bool",
  "allow-remote": "bool",
  "api-token": "string",
  "tokens": "string",
  "config": "string",
  "cdi-dir": "string",
  "cdi-root": "string",
  "mps": "bool",
  "kubelet-dir": "string",
  "k8s": "bool",
  "k8s-resource": "string",
  "k8s-share": `int:1:${DEFAULTS.k8sShareMax}`,
  "k8s-poll-ms": "int:100:600000",
  "k8s-recover-ms": "int:0:86400000",
  "k8s-ignored-xids": "string:blank",
  "nfd-file": "string",
  "readback-ms": "int:0:3600000",
  "seal-active": "string",
  "audit-fsync": "choice:record|batch",
  "audit-file-mb": "int:1:1024",
  "audit-files": "int:1:100000",
  "verify-max-age-ms": "int:0:86400000",
  "verify-mode": "choice:full|sampled",
  "verify-sweep-ms": "int:0:86400000",
  "max-ttl-s": `int:1:${MAX_TTL_S}`,
  "max-lease-mem-mb": `int:1:${MAX_LEASE_MEM_MB}`,
  "max-lease-streams": `int:1:${MAX_STREAMS}`,
  "lease-mem-mb": `int:1:${MAX_LEASE_MEM_MB}`,
  "lease-streams": `int:1:${MAX_STREAMS}`,
  "lease-ttl-s": `int:1:${MAX_TTL_S}`,
  "allowed-kernels": "string",
  "help": "bool",
  "version": "bool",
} as const);

/** `serve`'s flags: the bridge's less --list and --version. */
export function serveFlags() {
  const { list: _list, version: _version, ...flags } = bridgeFlags();
  return flags;
}

export const mockConsoleFlags = () => ({
  "host": "string",
  "port": "int:0:65535",
  "auth-token": "string:blank",
  "ack-delay-ms": "int:0:600000",
  "rtt-ms": "int:0:600000",
  "jitter-ms": "int:0:600000",
  "noise": "bool",
  "no-readback": "bool",
  "export-min-records": "int:1:100000",
  "export-window-s": "int:1:31536000",
  "log-level": "choice:debug|info|warn|error",
  "log-format": "choice:text|json",
  "help": "bool",
} as const);

export const peftExportFlags = () => ({
  "out": "string",
  "job": "string",
  "force": "bool",
  "tcp-host": "string",
  "tcp-port": "int:1:65535",
  "auth-token": "string:blank",
  "ticket": "string:blank",
  "ack-timeout-ms": "int:1:600000",
  "help": "bool",
} as const);

export const consoleFlags = () => ({
  "tcp-host": "string",
  "tcp-port": "int:1:65535",
  "auth-token": "string:blank",
  "role": "choice:queen|worker-gpu",
  "ticket": "string:blank",
  "ack-timeout-ms": "int:1:600000",
  "raw": "bool",
  "help": "bool",
} as const);

export const statsFlags = () => ({
  ...inventoryFlags(),
  "json": "bool",
  "log-level": "choice:debug|info|warn|error",
  "log-format": "choice:text|json",
  "help": "bool",
} as const);

export const telemetryPushFlags = () => ({
  "url": "string",
  "api-token": "string",
  "state-dir": "string",
  "help": "bool",
} as const);

export const telemetryExportFlags = () => ({
  "out": "string",
  "since": "string",
  "state-dir": "string",
  "help": "bool",
} as const);

export const auditVerifyFlags = () => ({
  "json": "bool",
  "help": "bool",
} as const);

export const modelsImportFlags = () => ({
  "id": "string",
  "registry": "string",
  "parent": "string",
  "job-id": "string",
  "approval": "choice:pending|approved|rejected",
  "from-export": "string",
  "help": "bool",
} as const);

export const modelsVerifyFlags = () => ({
  "registry": "string",
  "json": "bool",
  "help": "bool",
} as const);

export const modelsWatchFlags = () => ({
  "exec": "string",
  "url": "string",
  "api-token": "string",
  "help": "bool",
} as const);

export const completionFlags = () => ({ "help": "bool" } as const);

export const configCheckFlags = () => ({ "help": "bool" } as const);

export const tokensAddFlags = () => ({
  "role": "choice:reader|operator|admin",
  "workers": "string",
  "file": "string",
  "help": "bool",
} as const);

export const doctorFlags = () => ({
  ...inventoryFlags(),
  "dev-root": "string",
  "state-dir": "string",
  "spool-max-mb": SPOOL_MAX_MB,
  "tcp-host": "string",
  "tcp-port": "int:1:65535",
  "auth-token": "string:blank",
  "ticket": "string:blank",
  "timeout-ms": "int:1:60000",
  "json": "bool",
  "help": "bool",
} as const);

/** Parses the command line; throws UsageError for anything the bridge refuses. */
export function parseCommand(argv: readonly string[], env: Env): Command {
  if (argv[0] === "mock-console") return mockConsoleCommand(argv.slice(1), env);
  if (argv[0] === "console") return consoleCommand(argv.slice(1), env);
  if (argv[0] === "peft") return peftCommand(argv.slice(1), env);
  if (argv[0] === "serve") return serveCommand(argv.slice(1), env);
  if (argv[0] === "stats") return statsCommand(argv.slice(1));
  if (argv[0] === "doctor") return doctorCommand(argv.slice(1), env);
  if (argv[0] === "telemetry") return telemetryCommand(argv.slice(1), env);
  if (argv[0] === "models") return modelsCommand(argv.slice(1));
  if (argv[0] === "audit") return auditCommand(argv.slice(1));
  if (argv[0] === "tokens") return tokensCommand(argv.slice(1));
  if (argv[0] === "config") return configCommand(argv.slice(1));
  if (argv[0] === "cdi") return parseCdiCommand(argv.slice(1), env);
  if (argv[0] === "completion") return completionCommand(argv.slice(1));
  // Internal: the per-job child process of the runners (a request on stdin, a result on stdout).
  if (argv[0] === "run-kernel" && argv.length === 1) return { kind: "run-kernel" };
  const { values, positionals } = parseFlags(argv, bridgeFlags());
  if (values.help === true) return { kind: "help" };
  if (values.version === true) return { kind: "version" };
  if (positionals.length > 0) {
    throw new UsageError(
      `Unknown command or argument ${JSON.stringify(positionals[0])} (commands: ${COMMAND_NAMES.join(", ")})`,
    );
  }
  if (values.list !== true && values.publish !== true) {
    throw new UsageError("Nothing to do: pass --list, --publish or both (see --help)");
  }
  if (values.config === undefined) return { kind: "bridge", ...bridgeOptions(values, env) };
  return { kind: "bridge", ...optionsBeforeConfig(values, env), config: { file: values.config, argv } };
}

/**
 * The options from the command line alone, for a command whose `--config` file is read later
 * (`withConfig`): a check the file may settle (a token for --allow-remote) is left to then.
 */
function optionsBeforeConfig(values: FlagValues<ReturnType<typeof serveFlags>>, env: Env): { options: BridgeOptions; warnings: string[] } {
  try {
    return bridgeOptions(values, env);
  } catch {
    return bridgeOptions({}, env);
  }
}

/** `config check FILE`: the file's settings checked as serve's flags would be. */
function configCommand(argv: readonly string[]): Command {
  if (argv[0] !== "check") {
    if (argv[0] === "--help" || argv[0] === undefined) return { kind: "help", topic: "config" };
    throw new UsageError(`Unknown config command ${JSON.stringify(argv[0])} (check)`);
  }
  const { values, positionals } = parseFlags(argv.slice(1), configCheckFlags());
  if (values.help === true) return { kind: "help", topic: "config" };
  if (positionals.length !== 1) throw new UsageError("config check needs one FILE: the settings file serve --config reads");
  return { kind: "config-check", file: positionals[0]! };
}

/**
 * The options of `command` with its `--config` file's settings (`fileArgv`: the file as flags,
 * src/cli/config-file.ts) under the command line's: a flag given on both wins on the command
 * line. A bad setting is refused with the flag's own message, naming the file.
 */
export function withConfig(
  kind: "serve" | "bridge",
  config: ConfigSource,
  fileArgv: readonly string[],
  env: Env,
): { options: BridgeOptions; warnings: string[] } {
  const table = kind === "serve" ? serveFlags() : bridgeFlags();
  let fromFile: FlagValues<typeof table>;
  try {
    fromFile = parseFlags(fileArgv, table).values;
  } catch (error) {
    throw new UsageError(`Config ${config.file}: ${(error as Error).message}`);
  }
  const fromLine = parseFlags(config.argv, table).values;
  try {
    const { options, warnings } = bridgeOptions({ ...fromFile, ...fromLine }, env);
    return { options: { ...options, configFile: config.file }, warnings };
  } catch (error) {
    throw new UsageError(`Config ${config.file}: ${(error as Error).message}`);
  }
}

/** `completion bash|zsh|fish`: the shell's completion script on stdout. */
function completionCommand(argv: readonly string[]): Command {
  const { values, positionals } = parseFlags(argv, completionFlags());
  if (values.help === true) return { kind: "help", topic: "completion" };
  const [shell, extra] = positionals;
  if (shell === undefined) throw new UsageError(`completion needs a shell: ${SHELLS.join(", ")}`);
  if (!(SHELLS as readonly string[]).includes(shell)) {
    throw new UsageError(`completion: unknown shell ${JSON.stringify(shell)} (choose ${SHELLS.join(", ")})`);
  }
  if (extra !== undefined) throw new UsageError(`completion: unexpected argument ${JSON.stringify(extra)}`);
  return { kind: "completion", shell: shell as Shell };
}

function mockConsoleCommand(argv: readonly string[], env: Env): Command {
  const { values, positionals } = parseFlags(argv, mockConsoleFlags());
  if (values.help === true) return { kind: "help", topic: "mock-console" };
  if (positionals.length > 0) throw new UsageError(`mock-console: unexpected argument ${JSON.stringify(positionals[0])}`);
  return {
    kind: "mock-console",
    options: {
      host: values.host ?? DEFAULTS.mockConsoleHost,
      port: values.port ?? DEFAULTS.mockConsolePort,
      authToken: resolveAuthToken(values["auth-token"], env),
      ackDelayMs: values["ack-delay-ms"] ?? DEFAULTS.ackDelayMs,
      rttMs: values["rtt-ms"] ?? DEFAULTS.rttMs,
      jitterMs: values["jitter-ms"] ?? DEFAULTS.jitterMs,
      noise: values.noise === true,
      noReadback: values["no-readback"] === true,
      exportMinRecords: values["export-min-records"] ?? DEFAULTS.exportMinRecords,
      exportWindowS: values["export-window-s"] ?? DEFAULTS.exportWindowS,
      logLevel: values["log-level"] ?? DEFAULTS.logLevel,
      logFormat: values["log-format"] ?? DEFAULTS.logFormat,
    },
  };
}

/** `console ls DIR | cat FILE | echo FILE LINE...`: one request to a console. */
function consoleCommand(argv: readonly string[], env: Env): Command {
  const { values, positionals } = parseFlags(argv, consoleFlags());
  if (values.help === true) return { kind: "help", topic: "console" };
  const [sub, path, ...words] = positionals;
  const verb = sub === "ls" ? "LS" : sub === "cat" ? "CAT" : sub === "echo" ? "ECHO" : null;
  if (verb === null) throw new UsageError(`console: expected ls, cat or echo, got ${JSON.stringify(sub ?? "")}`);
  if (path === undefined || !path.startsWith("/")) {
    throw new UsageError(`console ${sub}: needs an absolute path, got ${JSON.stringify(path ?? "")}`);
  }
  if (verb === "ECHO" && words.length === 0) throw new UsageError("console echo: needs a line to append after the path");
  if (verb !== "ECHO" && words.length > 0) throw new UsageError(`console ${sub}: unexpected argument ${JSON.stringify(words[0])}`);
  const role = values.role ?? DEFAULTS.consoleRole;
  const ticket = values.ticket ?? DEFAULTS.ticket;
  if (role === "worker-gpu" && ticket.trim() === "") throw new UsageError("console: --role worker-gpu needs --ticket");
  return {
    kind: "console",
    request: {
      verb,
      path,
      line: words.join(" "),
      host: values["tcp-host"] ?? DEFAULTS.tcpHost,
      port: values["tcp-port"] ?? DEFAULTS.tcpPort,
      token: resolveAuthToken(values["auth-token"], env),
      role,
      ticket,
      ackTimeoutMs: values["ack-timeout-ms"] ?? DEFAULTS.ackTimeoutMs,
      raw: values.raw === true,
    },
  };
}

/** `peft export --out DIR [--job ID]`: pull a LoRA export bundle through the console. */
function peftCommand(argv: readonly string[], env: Env): Command {
  if (argv[0] !== "export") {
    if (argv[0] === "--help" || argv[0] === undefined) return { kind: "help", topic: "peft" };
    throw new UsageError(`Unknown peft command ${JSON.stringify(argv[0])} (export)`);
  }
  const { values, positionals } = parseFlags(argv.slice(1), peftExportFlags());
  if (values.help === true) return { kind: "help", topic: "peft" };
  if (positionals.length > 0) throw new UsageError(`peft export: unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.out === undefined) throw new UsageError("peft export needs --out DIR");
  if (values.job !== undefined && !isSafeId(values.job)) {
    throw new UsageError(`Option --job needs a job id of ${SAFE_ID_RULE}, got ${JSON.stringify(values.job)}`);
  }
  return {
    kind: "peft-export",
    request: {
      out: values.out,
      job: values.job,
      force: values.force === true,
      host: values["tcp-host"] ?? DEFAULTS.tcpHost,
      port: values["tcp-port"] ?? DEFAULTS.tcpPort,
      token: resolveAuthToken(values["auth-token"], env),
      ticket: values.ticket ?? DEFAULTS.ticket,
      ackTimeoutMs: values["ack-timeout-ms"] ?? DEFAULTS.ackTimeoutMs,
    },
  };
}

function telemetryCommand(argv: readonly string[], env: Env): Command {
  const sub = argv[0];
  if (sub === "push") {
    const { values, positionals } = parseFlags(argv.slice(1), telemetryPushFlags());
    if (values.help === true) return { kind: "help", topic: "telemetry" };
    if (positionals.length !== 1) throw new UsageError("telemetry push needs one FILE of NDJSON records (- for stdin)");
    return {
      kind: "telemetry-push",
      file: positionals[0]!,
      url: values.url ?? `http://${DEFAULTS.listenHost}:${DEFAULTS.listenPort}`,
      apiToken: values["api-token"],
      stateDir: values["state-dir"] ?? defaultStateDir(env),
    };
  }
  if (sub === "export") {
    const { values, positionals } = parseFlags(argv.slice(1), telemetryExportFlags());
    if (values.help === true) return { kind: "help", topic: "telemetry" };
    if (positionals.length > 0) throw new UsageError(`telemetry export: unexpected argument ${JSON.stringify(positionals[0])}`);
    if (values.out === undefined) throw new UsageError("telemetry export needs --out FILE");
    let sinceMs: number | undefined;
    const raw = values.since;
    if (raw !== undefined) {
      // Only digits or a date-time: Date.parse alone takes "-5" (or "5") as a year in 2001.
      sinceMs = /^\d+$/.test(raw) ? Number(raw) : RFC3339.test(raw) ? Date.parse(raw) : NaN;
      if (!Number.isSafeInteger(sinceMs)) {
        throw new UsageError(`Option --since needs epoch milliseconds or an RFC 3339 time, got ${JSON.stringify(raw)}`);
      }
    }
    return { kind: "telemetry-export", out: values.out, sinceMs, stateDir: values["state-dir"] ?? defaultStateDir(env) };
  }
  if (sub === "--help" || sub === undefined) return { kind: "help", topic: "telemetry" };
  throw new UsageError(`Unknown telemetry command ${JSON.stringify(sub)} (push, export)`);
}

/** `audit verify DIR [--json]`. */
function auditCommand(argv: readonly string[]): Command {
  if (argv[0] !== "verify") {
    if (argv[0] === "--help" || argv[0] === undefined) return { kind: "help", topic: "audit" };
    throw new UsageError(`Unknown audit command ${JSON.stringify(argv[0])} (verify)`);
  }
  const { values, positionals } = parseFlags(argv.slice(1), auditVerifyFlags());
  if (values.help === true) return { kind: "help", topic: "audit" };
  if (positionals.length !== 1) throw new UsageError("audit verify needs one DIR (the trail's folder, <state-dir>/audit)");
  return { kind: "audit-verify", dir: positionals[0]!, json: values.json === true };
}

/** A date, or a date and time with an optional zone: what --since takes besides epoch milliseconds. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?$/;

function modelsCommand(argv: readonly string[]): Command {
  if (argv[0] === "verify") return modelsVerifyCommand(argv.slice(1));
  if (argv[0] === "watch") return modelsWatchCommand(argv.slice(1));
  if (argv[0] !== "import") {
    if (argv[0] === "--help" || argv[0] === undefined) return { kind: "help", topic: "models" };
    throw new UsageError(`Unknown models command ${JSON.stringify(argv[0])} (import, verify, watch)`);
  }
  const { values, positionals } = parseFlags(argv.slice(1), modelsImportFlags());
  if (values.help === true) return { kind: "help", topic: "models" };
  if (positionals.length !== 1) throw new UsageError("models import needs one DIR: the adapter bundle");
  if (values.id === undefined) throw new UsageError("models import needs --id ID");
  if (values.registry === undefined) throw new UsageError("models import needs --registry DIR");
  return {
    kind: "models-import",
    bundle: positionals[0]!,
    id: values.id,
    registry: values.registry,
    parent: values.parent,
    jobId: values["job-id"],
    approval: values.approval,
    fromExport: values["from-export"],
  };
}

/** `models verify [ID] --registry DIR [--json]`. */
function modelsVerifyCommand(argv: readonly string[]): Command {
  const { values, positionals } = parseFlags(argv, modelsVerifyFlags());
  if (values.help === true) return { kind: "help", topic: "models" };
  if (positionals.length > 1) throw new UsageError(`models verify: unexpected argument ${JSON.stringify(positionals[1])}`);
  if (values.registry === undefined) throw new UsageError("models verify needs --registry DIR");
  return { kind: "models-verify", id: positionals[0], registry: values.registry, json: values.json === true };
}

/** `models watch --exec CMD [--url URL] [--api-token T]`. */
function modelsWatchCommand(argv: readonly string[]): Command {
  const { values, positionals } = parseFlags(argv, modelsWatchFlags());
  if (values.help === true) return { kind: "help", topic: "models" };
  if (positionals.length > 0) throw new UsageError(`models watch: unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.exec === undefined || values.exec.trim() === "") {
    throw new UsageError("models watch needs --exec CMD (the command to run on every activation)");
  }
  return {
    kind: "models-watch",
    exec: values.exec,
    url: values.url ?? `http://${DEFAULTS.listenHost}:${DEFAULTS.listenPort}`,
    apiToken: values["api-token"],
  };
}

/** `tokens add NAME --role R [--workers P,...] --file FILE`; the file's own rules are checked when it is written. */
function tokensCommand(argv: readonly string[]): Command {
  if (argv[0] !== "add") {
    if (argv[0] === "--help" || argv[0] === undefined) return { kind: "help", topic: "tokens" };
    throw new UsageError(`Unknown tokens command ${JSON.stringify(argv[0])} (add)`);
  }
  const { values, positionals } = parseFlags(argv.slice(1), tokensAddFlags());
  if (values.help === true) return { kind: "help", topic: "tokens" };
  if (positionals.length !== 1) throw new UsageError("tokens add needs one NAME: the principal's name");
  if (!isSafeId(positionals[0]!)) throw new UsageError(`tokens add: NAME must be ${SAFE_ID_RULE}, got ${JSON.stringify(positionals[0])}`);
  if (values.role === undefined) throw new UsageError("tokens add needs --role reader|operator|admin");
  if (values.file === undefined) throw new UsageError("tokens add needs --file FILE (the file serve --tokens reads)");
  const workers = (values.workers ?? "").split(",").map((w) => w.trim()).filter((w) => w !== "");
  if (values.role === "operator" && workers.length === 0) {
    throw new UsageError("tokens add: an operator needs --workers PATTERN[,PATTERN...] (the worker ids it may act for, * for any run)");
  }
  if (values.role !== "operator" && workers.length > 0) {
    throw new UsageError(`tokens add: only an operator takes --workers, not a ${values.role}`);
  }
  return { kind: "tokens-add", name: positionals[0]!, role: values.role, workers, file: values.file };
}

function statsCommand(argv: readonly string[]): Command {
  const { values, positionals } = parseFlags(argv, statsFlags());
  if (values.help === true) return { kind: "help", topic: "stats" };
  if (positionals.length > 0) throw new UsageError(`stats: unexpected argument ${JSON.stringify(positionals[0])}`);
  return {
    kind: "stats",
    options: {
      ...inventoryOptions(values),
      json: values.json === true,
      logLevel: values["log-level"] ?? DEFAULTS.logLevel,
      logFormat: values["log-format"] ?? DEFAULTS.logFormat,
    },
  };
}

function doctorCommand(argv: readonly string[], env: Env): Command {
  const { values, positionals } = parseFlags(argv, doctorFlags());
  if (values.help === true) return { kind: "help", topic: "doctor" };
  if (positionals.length > 0) throw new UsageError(`doctor: unexpected argument ${JSON.stringify(positionals[0])}`);
  // The console is probed only when asked for: a host being set up may have no VM yet.
  const probe = values["tcp-port"] !== undefined || values["auth-token"] !== undefined;
  const token = resolveAuthToken(values["auth-token"], env);
  return {
    kind: "doctor",
    secrets: [token],
    options: {
      ...inventoryOptions(values),
      devRoot: values["dev-root"] ?? DEFAULTS.devRoot,
      stateDir: values["state-dir"] ?? defaultStateDir(env),
      spoolMaxBytes: spoolMaxBytes(values["spool-max-mb"]),
      console: probe
        ? {
          host: values["tcp-host"] ?? DEFAULTS.tcpHost,
          port: values["tcp-port"] ?? DEFAULTS.tcpPort,
          token,
          ticket: values.ticket ?? DEFAULTS.ticket,
        }
        : null,
      timeoutMs: values["timeout-ms"] ?? DEFAULTS.doctorTimeoutMs,
      json: values.json === true,
    },
  };
}

/** `--mock`, `--backend` and `--sys-root`; `--mock` is `--backend mock` and conflicts with any other. */
function inventoryOptions(values: FlagValues<ReturnType<typeof inventoryFlags>>): { backend: Backend; sysRoot: string } {
  const backend = values.backend;
  if (values.mock === true && backend !== undefined && backend !== "mock") {
    throw new UsageError(`Option --mock conflicts with --backend ${backend}`);
  }
  return { backend: values.mock === true ? "mock" : backend ?? DEFAULTS.backend, sysRoot: values["sys-root"] ?? DEFAULTS.sysRoot };
}

function serveCommand(argv: readonly string[], env: Env): Command {
  const { values, positionals } = parseFlags(argv, serveFlags());
  if (values.help === true) return { kind: "help", topic: "serve" };
  if (positionals.length > 0) throw new UsageError(`serve: unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.config === undefined) return { kind: "serve", ...bridgeOptions(values, env) };
  return { kind: "serve", ...optionsBeforeConfig(values, env), config: { file: values.config, argv } };
}

function bridgeOptions(
  values: FlagValues<ReturnType<typeof serveFlags>> & { list?: true },
  env: Env,
): { options: BridgeOptions; warnings: string[] } {
  const warnings: string[] = [];
  const publish = values.publish === true;
  const intervalMs = values["interval-ms"];
  if (intervalMs !== undefined && !publish) warnings.push("--interval-ms has no effect without --publish");
  return {
    warnings,
    options: {
      ...inventoryOptions(values),
      registry: values.registry,
      list: values.list === true,
      publish,
      intervalMs,
      tcpHost: values["tcp-host"] ?? DEFAULTS.tcpHost,
      tcpPort: values["tcp-port"] ?? DEFAULTS.tcpPort,
      authToken: resolveAuthToken(values["auth-token"], env),
      ticket: values.ticket ?? DEFAULTS.ticket,
      ackTimeoutMs: values["ack-timeout-ms"] ?? DEFAULTS.ackTimeoutMs,
      window: values.window ?? DEFAULTS.window,
      logLevel: values["log-level"] ?? DEFAULTS.logLevel,
      logFormat: values["log-format"] ?? DEFAULTS.logFormat,
      stateDir: values["state-dir"] ?? defaultStateDir(env),
      bundleDir: values["bundle-dir"],
      runner: values.runner ?? DEFAULTS.runner,
      maxStreamsPerGpu: values["max-streams-per-gpu"] ?? DEFAULTS.maxStreamsPerGpu,
      jobResultsBytes: (values["job-results-mb"] ?? DEFAULTS.jobResultsMb) * 1048576,
      jobResultsAgeMs: (values["job-results-age-s"] ?? DEFAULTS.jobResultsAgeS) * 1000,
      deviceId: deviceId(values["device-id"]),
      spoolMaxBytes: spoolMaxBytes(values["spool-max-mb"]),
      queenSegmentBytes: (values["queen-segment-kb"] ?? DEFAULTS.queenSegmentKb) * 1024,
      listen: values["no-api"] === true ? null : parseListen(values, env),
      apiToken: checkApiToken(values["api-token"], env),
      tokensFile: values.tokens,
      cdiDir: values["cdi-dir"],
      cdiRoot: values["cdi-root"],
      mps: mpsFlag(values.mps === true, values["cdi-dir"]),
      readbackMs: values["readback-ms"] ?? DEFAULTS.readbackMs,
      sealActive: values["seal-active"],
      auditFsync: values["audit-fsync"] ?? DEFAULTS.auditFsync,
      auditFileBytes: (values["audit-file-mb"] ?? DEFAULTS.auditFileMb) * 1048576,
      auditFiles: values["audit-files"] ?? DEFAULTS.auditFiles,
      verifyMaxAgeMs: values["verify-max-age-ms"] ?? DEFAULTS.verifyMaxAgeMs,
      k8s: k8sOptions(values),
      ...leasePolicy(values),
      ...verifyOptions(values, env, warnings),
      allowedKernels: kernelList(values["allowed-kernels"] ?? DEFAULTS.allowedKernels),
    },
  };
}

/**
 * The lease policy's flags. A default above its maximum is refused naming both; the default
 * TTL, when not given, is the shorter of DEFAULTS.leaseTtlS and the maximum.
 */
function leasePolicy(values: FlagValues<ReturnType<typeof serveFlags>>) {
  const maxTtlS = values["max-ttl-s"] ?? MAX_TTL_S;
  const policy = {
    maxTtlS,
    maxLeaseMemMb: values["max-lease-mem-mb"] ?? null,
    maxLeaseStreams: values["max-lease-streams"] ?? MAX_STREAMS,
    leaseMemMb: values["lease-mem-mb"] ?? null,
    leaseStreams: values["lease-streams"] ?? null,
    leaseTtlS: values["lease-ttl-s"] ?? Math.min(DEFAULTS.leaseTtlS, maxTtlS),
  };
  const pairs = [
    ["lease-mem-mb", policy.leaseMemMb, "max-lease-mem-mb", policy.maxLeaseMemMb],
    ["lease-streams", policy.leaseStreams, "max-lease-streams", policy.maxLeaseStreams],
    ["lease-ttl-s", policy.leaseTtlS, "max-ttl-s", policy.maxTtlS],
  ] as const;
  for (const [flag, value, maxFlag, max] of pairs) {
    if (value !== null && max !== null && value > max) {
      const given = values[maxFlag] === undefined ? " (its default)" : "";
      throw new UsageError(
        `Option --${flag} ${value} is over --${maxFlag} ${max}${given}: a default lease must be one the maximum allows; lower --${flag} or raise --${maxFlag}`,
      );
    }
  }
  return policy;
}

/**
 * `--verify-mode` and `--verify-sweep-ms`, else what $GPU_BRIDGE_VRAM_GATE and
 * $GPU_BRIDGE_VRAM_SWEEP_MS said before the flags existed (the flags win), else full checks
 * and no sweep (a sweep every DEFAULTS.vramSampledSweepMs when sampled).
 */
function verifyOptions(values: FlagValues<ReturnType<typeof serveFlags>>, env: Env, warnings: string[]) {
  const verifyMode: VerifyMode = values["verify-mode"] ?? (env.GPU_BRIDGE_VRAM_GATE === "sampled" ? "sampled" : DEFAULTS.verifyMode);
  let fromEnv: number | undefined;
  const raw = env.GPU_BRIDGE_VRAM_SWEEP_MS?.trim() ?? "";
  if (values["verify-sweep-ms"] === undefined && raw !== "") {
    const ok = /^\d{1,9}$/.test(raw);
    fromEnv = ok ? Number(raw) : 0;
    if (!ok) warnings.push(`GPU_BRIDGE_VRAM_SWEEP_MS=${JSON.stringify(raw)} is not milliseconds: no sweep`);
  }
  const verifySweepMs = values["verify-sweep-ms"] ?? fromEnv ?? (verifyMode === "sampled" ? DEFAULTS.vramSampledSweepMs : 0);
  return { verifyMode, verifySweepMs };
}

/** `--allowed-kernels vadd,matmul,ptx`: each once. */
function kernelList(raw: string): JobKernel[] {
  const kernels: JobKernel[] = [];
  for (const part of raw.split(",").map((p) => p.trim())) {
    if (!(JOB_KERNELS as readonly string[]).includes(part)) {
      throw new UsageError(
        `Option --allowed-kernels takes ${JOB_KERNELS.join(", ")} separated by commas, got ${JSON.stringify(part)} in ${
          JSON.stringify(raw)
        }`,
      );
    }
    if (kernels.includes(part as JobKernel)) throw new UsageError(`Option --allowed-kernels names ${part} twice in ${JSON.stringify(raw)}`);
    kernels.push(part as JobKernel);
  }
  return kernels;
}

/** An extended resource name as the kubelet takes it: `domain/name`, each part a DNS-style label. */
const RESOURCE_NAME = /^(?=.{1,253}\/)[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** `--kubelet-dir` / `--k8s` and the flags that go with them; undefined when the plugin is off. */
function k8sOptions(values: FlagValues<ReturnType<typeof serveFlags>>): K8sOptions | undefined {
  const on = values.k8s === true || values["kubelet-dir"] !== undefined;
  if (!on) {
    const stray = (["k8s-resource", "k8s-share", "k8s-poll-ms", "k8s-recover-ms", "k8s-ignored-xids", "nfd-file"] as const)
      .find((f) => values[f] !== undefined);
    if (stray !== undefined) throw new UsageError(`Option --${stray} needs the device plugin: add --k8s or --kubelet-dir DIR`);
    return undefined;
  }
  const resource = values["k8s-resource"];
  if (resource === undefined) {
    throw new UsageError("Option --k8s needs --k8s-resource NAME, the resource pods request (e.g. cohesix.io/gpu)");
  }
  if (!RESOURCE_NAME.test(resource) || resource.startsWith("kubernetes.io/")) {
    throw new UsageError(
      `Option --k8s-resource must be DOMAIN/NAME (lower-case domain, name of up to 63 letters, digits, - _ .; not kubernetes.io/), got ${
        JSON.stringify(resource)
      }`,
    );
  }
  if (values["cdi-dir"] === undefined) {
    throw new UsageError("Option --k8s needs --cdi-dir DIR: each Allocate answers with the lease's CDI device, written there first");
  }
  return {
    kubeletDir: values["kubelet-dir"] ?? DEFAULTS.kubeletDir,
    resource,
    share: values["k8s-share"] ?? 1,
    pollMs: values["k8s-poll-ms"] ?? DEFAULTS.k8sPollMs,
    recoverMs: values["k8s-recover-ms"] ?? DEFAULTS.k8sRecoverMs,
    ignoredXids: xidList(values["k8s-ignored-xids"] ?? DEFAULTS.k8sIgnoredXids),
    nfdFile: values["nfd-file"] ?? null,
  };
}

/** `--k8s-ignored-xids 13,31,...` (blank: none ignored). */
function xidList(raw: string): number[] {
  if (raw.trim() === "") return [];
  return raw.split(",").map((part) => {
    const n = Number(part.trim());
    if (!/^\d{1,4}$/.test(part.trim()) || n < 1) {
      throw new UsageError(
        `Option --k8s-ignored-xids takes XID numbers separated by commas, got ${JSON.stringify(part.trim())} in ${JSON.stringify(raw)}`,
      );
    }
    return n;
  });
}

/** `--api-token` (or a set `GPU_BRIDGE_API_TOKEN`), refused when short enough to guess. */
function checkApiToken(flag: string | undefined, env: Env): string | undefined {
  // No array destructuring: it runs the iterator protocol, compiled on first use at every start.
  const fromFlag = flag !== undefined && flag.trim() !== "";
  const name = fromFlag ? "Option --api-token" : "GPU_BRIDGE_API_TOKEN";
  const value = fromFlag ? flag.trim() : env.GPU_BRIDGE_API_TOKEN?.trim() ?? "";
  const problem = value === "" ? null : apiTokenProblem(value);
  if (problem !== null) {
    throw new UsageError(`${name} ${problem} (the value is not shown); use a long random token, or leave it out to have one generated`);
  }
  return flag;
}

/** `--mps` caps containers through the lease devices of the CDI spec, so it needs `--cdi-dir`. */
function mpsFlag(mps: boolean, cdiDir: string | undefined): boolean {
  if (mps && cdiDir === undefined) {
    throw new UsageError("Option --mps caps leases' containers through their CDI devices: give --cdi-dir DIR too");
  }
  return mps;
}

/** A device id the Queen's paths can hold (the contract's safe-id rule). */
function deviceId(raw: string | undefined): string | undefined {
  if (raw !== undefined && !isSafeId(raw)) {
    throw new UsageError(`Option --device-id must be ${SAFE_ID_RULE}, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

export const DEFAULT_LISTEN = Object.freeze({ host: DEFAULTS.listenHost, port: DEFAULTS.listenPort });

/** `--listen HOST:PORT` (IPv6 as `[::1]:PORT`); anything but loopback needs --allow-remote and a token. */
function parseListen(values: FlagValues<ReturnType<typeof serveFlags>>, env: Env): { host: string; port: number } {
  const raw = values.listen;
  if (raw === undefined) return DEFAULT_LISTEN;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(raw);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) throw new UsageError(`Option --listen needs HOST:PORT (IPv6 as [::1]:PORT), got ${JSON.stringify(raw)}`);
  const host = (m[1] ?? m[2])!;
  if (!isLoopback(host)) {
    if (values["allow-remote"] !== true) {
      throw new UsageError(`Option --listen ${raw} is not a loopback address; pass --allow-remote to expose the API beyond this host`);
    }
    if (values["api-token"] === undefined && values.tokens === undefined && !env.GPU_BRIDGE_API_TOKEN?.trim()) {
      throw new UsageError(
        `Option --listen ${raw} with --allow-remote needs an explicit --api-token, GPU_BRIDGE_API_TOKEN or --tokens FILE`,
      );
    }
  }
  return { host, port };
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** `$XDG_STATE_HOME/gpu-bridge-host`, else `~/.local/state/gpu-bridge-host`. */
export function defaultStateDir(env: Env): string {
  const xdg = env.XDG_STATE_HOME?.trim();
  if (xdg) return `${xdg.replace(/\/+$/, "")}/gpu-bridge-host`;
  return `${env.HOME?.trim() || "/var/lib"}/.local/state/gpu-bridge-host`;
}

/**
 * The console token: the flag unless absent or blank, then `COH_AUTH_TOKEN`, then
 * `COHSH_AUTH_TOKEN` (each trimmed, ignored if blank), then `changeme`.
 */
export function resolveAuthToken(flag: string | undefined, env: Env): string {
  if (flag !== undefined && flag.trim() !== "") return flag;
  return env.COH_AUTH_TOKEN?.trim() || env.COHSH_AUTH_TOKEN?.trim() || DEFAULTS.authToken;
}

export { UsageError };
