/** `gpu-bridge-host cdi generate|validate|apply|list`: the command line, parsed. */
import { type FlagTable, parseFlags, UsageError } from "./flags.ts";

export type CdiCommand =
  | {
    readonly kind: "cdi-generate";
    readonly backend: "auto" | "nvml" | "cuda" | "jetson" | "mock";
    readonly sysRoot: string;
    readonly devRoot: string;
    readonly driverRoot: string;
    readonly csvDir: string | undefined;
    readonly hookPath: string | undefined;
    readonly cdiKind: string | undefined;
    readonly format: "json" | "yaml";
    readonly output: string | undefined;
  }
  | { readonly kind: "cdi-validate"; readonly files: readonly string[]; readonly consumerVersion: string | undefined; readonly hostCheck: boolean }
  | { readonly kind: "cdi-apply"; readonly specDirs: readonly string[] | undefined; readonly input: string; readonly output: string | undefined; readonly devices: readonly string[] }
  | { readonly kind: "cdi-list"; readonly specDirs: readonly string[] | undefined };

const GENERATE_FLAGS: FlagTable = {
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
};

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
      if (value === undefined || value.trim() === "" || (a === "--spec-dir" && value.startsWith("--"))) throw new UsageError("Option --spec-dir needs a value");
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
  if (sub === "generate") {
    const { values, positionals } = parseFlags(argv.slice(1), GENERATE_FLAGS);
    if (values.help === true) return help;
    if (positionals.length > 0) throw new UsageError(`cdi generate: unexpected argument ${JSON.stringify(positionals[0])}`);
    const backend = values.backend as CdiCommand & { kind: "cdi-generate" } extends { backend: infer B } ? B | undefined : never;
    if (values.mock === true && backend !== undefined && backend !== "mock") throw new UsageError(`Option --mock conflicts with --backend ${backend}`);
    const output = values.output as string | undefined;
    return {
      kind: "cdi-generate",
      backend: values.mock === true ? "mock" : backend ?? "auto",
      sysRoot: (values["sys-root"] as string | undefined) ?? "/",
      devRoot: (values["dev-root"] as string | undefined) ?? "/",
      driverRoot: (values["driver-root"] as string | undefined) ?? "/",
      csvDir: values["csv-dir"] as string | undefined,
      hookPath: values["hook-path"] as string | undefined,
      cdiKind: values.kind as string | undefined,
      format: (values.format as "json" | "yaml" | undefined) ?? (output?.endsWith(".yaml") ? "yaml" : "json"),
      output,
    };
  }
  if (sub === "validate") {
    const { values, positionals } = parseFlags(argv.slice(1), { "consumer-version": "string", "no-host-check": "bool", "help": "bool" });
    if (values.help === true) return help;
    if (positionals.length === 0) throw new UsageError("cdi validate needs at least one FILE");
    const consumer = values["consumer-version"] as string | undefined;
    if (consumer !== undefined && !/^v?\d+\.\d+\.\d+$/.test(consumer)) {
      throw new UsageError(`Option --consumer-version needs a version such as 0.5.0, got ${JSON.stringify(consumer)}`);
    }
    return { kind: "cdi-validate", files: positionals, consumerVersion: consumer?.replace(/^v/, ""), hostCheck: values["no-host-check"] !== true };
  }
  if (sub === "apply") {
    const { rest, dirs } = takeSpecDirs(argv.slice(1));
    const { values, positionals } = parseFlags(rest, { "input": "string", "output": "string", "help": "bool" });
    if (values.help === true) return help;
    if (positionals.length === 0) throw new UsageError("cdi apply needs at least one DEVICE (vendor/class=name)");
    return { kind: "cdi-apply", specDirs: dirs, input: (values.input as string | undefined) ?? "-", output: values.output as string | undefined, devices: positionals };
  }
  if (sub === "list") {
    const { rest, dirs } = takeSpecDirs(argv.slice(1));
    const { values, positionals } = parseFlags(rest, { "help": "bool" });
    if (values.help === true) return help;
    if (positionals.length > 0) throw new UsageError(`cdi list: unexpected argument ${JSON.stringify(positionals[0])}`);
    return { kind: "cdi-list", specDirs: dirs };
  }
  throw new UsageError(`Unknown cdi command ${JSON.stringify(sub)} (generate, validate, apply, list)`);
}
