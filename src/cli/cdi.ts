/**
 * `gpu-bridge-host cdi generate|validate|apply|list`: the command line, parsed. The tables are
 * built only when `cdi` is parsed (options.ts loads this module at every start); their help is
 * in usage.ts (CDI_HELP), and a test keeps the two equal.
 */
import { type Backend, DEFAULTS } from "./defaults.ts";
import { parseFlags, UsageError } from "./flags.ts";

/** Which text `cdi generate` writes. */
export type CdiFormat = "json" | "yaml";

export type CdiCommand =
  | {
    readonly kind: "cdi-generate";
    readonly backend: Backend;
    readonly sysRoot: string;
    readonly devRoot: string;
    readonly driverRoot: string;
    /** Jetson's CSV folder; undefined: DEFAULTS.cdiCsvDir. */
    readonly csvDir: string | undefined;
    /** undefined: DEFAULTS.cdiHookPath. */
    readonly hookPath: string | undefined;
    /** undefined: DEFAULTS.cdiKind. */
    readonly cdiKind: string | undefined;
    readonly format: CdiFormat;
    readonly output: string | undefined;
  }
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
  }
  | { readonly kind: "cdi-list"; readonly specDirs: readonly string[] | undefined };

/** Each subcommand's flags (`--spec-dir` may repeat, so it is taken out before the table parse). */
export const cdiFlags = () => ({
  generate: {
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
  },
  validate: { "consumer-version": "string", "no-host-check": "bool", "help": "bool" },
  apply: { "spec-dir": "string", "input": "string", "output": "string", "help": "bool" },
  list: { "spec-dir": "string", "help": "bool" },
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

/** Parses the arguments after `cdi`; `help` is returned for `--help` and no subcommand. */
export function parseCdiCommand(argv: readonly string[]): CdiCommand | { readonly kind: "help"; readonly topic: "cdi" } {
  const sub = argv[0];
  const help = { kind: "help", topic: "cdi" } as const;
  if (sub === undefined || sub === "--help") return help;
  const tables = cdiFlags();
  if (sub === "generate") {
    const { values, positionals } = parseFlags(argv.slice(1), tables.generate);
    if (values.help === true) return help;
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
      devRoot: values["dev-root"] ?? DEFAULTS.cdiRoot,
      driverRoot: values["driver-root"] ?? DEFAULTS.cdiRoot,
      csvDir: values["csv-dir"],
      hookPath: values["hook-path"],
      cdiKind: values.kind,
      // An --output ending in .yaml picks YAML.
      format: values.format ?? (output?.endsWith(".yaml") ? "yaml" : DEFAULTS.cdiFormat),
      output,
    };
  }
  if (sub === "validate") {
    const { values, positionals } = parseFlags(argv.slice(1), tables.validate);
    if (values.help === true) return help;
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
  if (sub === "apply") {
    const { rest, dirs } = takeSpecDirs(argv.slice(1));
    // The table less --spec-dir, named field by field: an object rest calls a builtin, and
    // apply is on every container's start.
    const { input, output, help: helpFlag } = tables.apply;
    const { values, positionals } = parseFlags(rest, { input, output, help: helpFlag });
    if (values.help === true) return help;
    if (positionals.length === 0) throw new UsageError("cdi apply needs at least one DEVICE (vendor/class=name)");
    return { kind: "cdi-apply", specDirs: dirs, input: values.input ?? "-", output: values.output, devices: positionals };
  }
  if (sub === "list") {
    const { rest, dirs } = takeSpecDirs(argv.slice(1));
    const { "spec-dir": _specDir, ...table } = tables.list;
    const { values, positionals } = parseFlags(rest, table);
    if (values.help === true) return help;
    if (positionals.length > 0) throw new UsageError(`cdi list: unexpected argument ${JSON.stringify(positionals[0])}`);
    return { kind: "cdi-list", specDirs: dirs };
  }
  throw new UsageError(`Unknown cdi command ${JSON.stringify(sub)} (generate, validate, apply, list)`);
}
