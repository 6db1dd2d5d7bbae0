/**
 * `gpu-bridge-host cdi generate|validate|apply|list`: the command line, parsed. The tables are
 * built only when `cdi` is parsed (options.ts loads this module at every start); their help is
 * in usage.ts (CDI_HELP), and a test keeps the two equal.
 */
import type { GenerateRequest } from "../cdi/generate-command.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { parseFlags, UsageError } from "./flags.ts";

/** Which text `cdi generate` writes. */
export type CdiFormat = GenerateRequest["format"];

export type CdiCommand =
  | ({ readonly kind: "cdi-generate" } & GenerateRequest)
  | {
    readonly kind: "cdi-validate";
    readonly files: readonly string[];
    readonly consumerVersion: string | undefined;
    readonly hostCheck: boolean;
  }
  | {
    readonly kind: "cdi-apply";
    readonly specDirs: readonly string[] | undefined;
    readonly input: string;
    readonly output: string | undefined;
    readonly devices: readonly string[];
    /** The validated-spec cache (src/cdi/spec-cache.ts); undefined: none. */
    readonly cacheDir: string | undefined;
  }
  | { readonly kind: "cdi-list"; readonly specDirs: readonly string[] | undefined; readonly cacheDir: string | undefined };

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The validated-spec cache's folder by default, one nobody else can write by construction:
 * `/run` for root (only root may create below it), the user's runtime folder for another user
 * where it is `/run/user/<uid>` (made by logind, the user's own, 0700; never one that `sudo -E`
 * carried over), otherwise none. See src/cdi/spec-cache.ts.
 */
export function defaultCacheDir(env: Env, uid: number | undefined): string | undefined {
  if (uid === 0) return "/run/gpu-bridge-host/cdi-cache";
  const runtime = env.XDG_RUNTIME_DIR?.trim().replace(/\/+$/, "");
  return uid !== undefined && runtime === `/run/user/${uid}` ? `${runtime}/gpu-bridge-host/cdi-cache` : undefined;
}

/** `--cache-dir DIR`, `--no-cache`, or the default. */
function cacheDir(values: { "cache-dir"?: string; "no-cache"?: true }, env: Env): string | undefined {
  if (values["no-cache"] === true) {
    if (values["cache-dir"] !== undefined) throw new UsageError("Option --no-cache conflicts with --cache-dir");
    return undefined;
  }
  const dir = values["cache-dir"];
  // Relative would mean relative to wherever the runtime starts the hook (a new folder per
  // container): a cache that silently never hits. Refused, so the mistake shows at once.
  if (dir !== undefined && !dir.startsWith("/")) {
    throw new UsageError(
      `Option --cache-dir needs an absolute path (cdi apply runs from the runtime's working folder), got ${JSON.stringify(dir)}`,
    );
  }
  return dir ?? defaultCacheDir(env, process.geteuid?.() ?? process.getuid?.());
}

/**
 * Each subcommand's flags (`--spec-dir` may repeat, so it is taken out before the table parse).
 * One function per table, and one parser per subcommand below: on a cold start a function costs
 * its size the first time it runs, and `cdi apply` (every container's start) runs only its own.
 */
const generateFlags = () => ({
  "mock": "bool",
  "backend": "choice:auto|nvml|cuda|jetson|mock",
  "sys-root": "string",
  "dev-root": "string",
  "driver-root": "string",
  "csv-dir": "string",
  "hook-path": "string",
  "kind": "string",
  "format": "choice:json|yaml",
  "output": "string",
  "help": "bool",
} as const);
const validateFlags = () => ({ "consumer-version": "string", "no-host-check": "bool", "help": "bool" } as const);
/** apply's table less --spec-dir (taken out first). */
const applyFlags = () => ({ "input": "string", "output": "string", "cache-dir": "string", "no-cache": "bool", "help": "bool" } as const);
/** list's table less --spec-dir (taken out first). */
const listFlags = () => ({ "cache-dir": "string", "no-cache": "bool", "help": "bool" } as const);

/** Every subcommand's flags, --spec-dir included: what CDI_HELP documents (a test holds them equal). */
export const cdiFlags = () => ({
  generate: generateFlags(),
  validate: validateFlags(),
  apply: { "spec-dir": "string", ...applyFlags() },
  list: { "spec-dir": "string", ...listFlags() },
} as const);

/** `--spec-dir` may be given several times (lowest priority first): taken out before the table parse. */
function takeSpecDirs(argv: readonly string[]): { rest: string[]; dirs: string[] | undefined } {
  const rest: string[] = [];
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "--spec-dir" || a.startsWith("--spec-dir=")) {
      const value = a === "--spec-dir" ? argv[++i] : a.slice("--spec-dir=".length);
      if (value === undefined || value.trim() === "" || (a === "--spec-dir" && value.startsWith("--"))) {
        throw new UsageError("Option --spec-dir needs a value");
      }
      dirs.push(value);
      continue;
    }
    rest.push(a);
  }
  return { rest, dirs: dirs.length > 0 ? dirs : undefined };
}

const HELP = { kind: "help", topic: "cdi" } as const;

/** Parses the arguments after `cdi`; `help` is returned for `--help` and no subcommand. */
export function parseCdiCommand(argv: readonly string[], env: Env): CdiCommand | typeof HELP {
  const sub = argv[0];
  if (sub === undefined || sub === "--help") return HELP;
  const rest = argv.slice(1);
  if (sub === "apply") return parseApply(rest, env);
  if (sub === "list") return parseList(rest, env);
  if (sub === "generate") return parseGenerate(rest);
  if (sub === "validate") return parseValidate(rest);
  throw new UsageError(`Unknown cdi command ${JSON.stringify(sub)} (generate, validate, apply, list)`);
}

function parseApply(argv: readonly string[], env: Env): CdiCommand | typeof HELP {
  const { rest, dirs } = takeSpecDirs(argv);
  const { values, positionals } = parseFlags(rest, applyFlags());
  if (values.help === true) return HELP;
  if (positionals.length === 0) throw new UsageError("cdi apply needs at least one DEVICE (vendor/class=name)");
  return {
    kind: "cdi-apply",
    specDirs: dirs,
    input: values.input ?? "-",
    output: values.output,
    devices: positionals,
    cacheDir: cacheDir(values, env),
  };
}

function parseList(argv: readonly string[], env: Env): CdiCommand | typeof HELP {
  const { rest, dirs } = takeSpecDirs(argv);
  const { values, positionals } = parseFlags(rest, listFlags());
  if (values.help === true) return HELP;
  if (positionals.length > 0) throw new UsageError(`cdi list: unexpected argument ${JSON.stringify(positionals[0])}`);
  return { kind: "cdi-list", specDirs: dirs, cacheDir: cacheDir(values, env) };
}

function parseGenerate(argv: readonly string[]): CdiCommand | typeof HELP {
  const { values, positionals } = parseFlags(argv, generateFlags());
  if (values.help === true) return HELP;
  if (positionals.length > 0) throw new UsageError(`cdi generate: unexpected argument ${JSON.stringify(positionals[0])}`);
  const backend = values.backend;
  if (values.mock === true && backend !== undefined && backend !== "mock") {
    throw new UsageError(`Option --mock conflicts with --backend ${backend}`);
  }
  const output = values.output;
  return {
    kind: "cdi-generate",
    backend: values.mock === true ? "mock" : backend ?? DEFAULTS.backend,
    sysRoot: values["sys-root"] ?? DEFAULTS.sysRoot,
    devRoot: values["dev-root"], // undefined: the default, or the mock GPUs' own nodes with --mock
    driverRoot: values["driver-root"] ?? DEFAULTS.cdiRoot,
    csvDir: values["csv-dir"],
    hookPath: values["hook-path"],
    cdiKind: values.kind,
    // An --output ending in .yaml picks YAML.
    format: values.format ?? (output?.endsWith(".yaml") ? "yaml" : DEFAULTS.cdiFormat),
    output,
  };
}

function parseValidate(argv: readonly string[]): CdiCommand | typeof HELP {
  const { values, positionals } = parseFlags(argv, validateFlags());
  if (values.help === true) return HELP;
  if (positionals.length === 0) throw new UsageError("cdi validate needs at least one FILE");
  const consumer = values["consumer-version"];
  if (consumer !== undefined && !/^v?\d+\.\d+\.\d+$/.test(consumer)) {
    throw new UsageError(`Option --consumer-version needs a version such as 0.5.0, got ${JSON.stringify(consumer)}`);
  }
  return {
    kind: "cdi-validate",
    files: positionals,
    consumerVersion: consumer?.replace(/^v/, ""),
    hostCheck: values["no-host-check"] !== true,
  };
}
