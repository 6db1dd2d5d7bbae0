/**
 * Every command line the bridge takes, as data: each command's path (`cdi apply`), its flag table
 * (the very table its parser uses) and the help of each flag. The shell completions and the man
 * page are generated from it; tests hold it equal to the parser and the help. Loaded only by
 * `completion` and the man page generator, never at an ordinary start.
 */
import { cdiFlags } from "./cdi.ts";
import type { FlagTable } from "./flags.ts";
import {
  auditVerifyFlags,
  bridgeFlags,
  completionFlags,
  configCheckFlags,
  consoleFlags,
  doctorFlags,
  mockConsoleFlags,
  modelsImportFlags,
  modelsVerifyFlags,
  modelsWatchFlags,
  peftExportFlags,
  serveFlags,
  SHELLS,
  statsFlags,
  telemetryExportFlags,
  telemetryPushFlags,
  tokensAddFlags,
  vramAttestVerifyFlags,
} from "./options.ts";
import {
  AUDIT_HELP,
  CDI_HELP,
  COMPLETION_HELP,
  CONFIG_CHECK_HELP,
  CONSOLE_HELP,
  DOCTOR_HELP,
  FLAG_HELP,
  type FlagHelp,
  MOCK_CONSOLE_HELP,
  MODELS_IMPORT_HELP,
  MODELS_VERIFY_HELP,
  MODELS_WATCH_HELP,
  PEFT_EXPORT_HELP,
  STATS_HELP,
  TELEMETRY_HELP,
  TOKENS_ADD_HELP,
  VRAM_ATTEST_HELP,
} from "./usage.ts";

/** What a command's bare words (its positionals) are. */
export type Positionals =
  | { readonly kind: "none" }
  /** Local files or folders. */
  | { readonly kind: "files" }
  /** The first is one of `words`; what follows is free text (a VM path, a line). */
  | { readonly kind: "words"; readonly words: readonly string[] }
  /** Free text: device names, VM paths. */
  | { readonly kind: "text" };

/** One command line: `path` after the program's name, its flags and their help. */
export interface CommandEntry {
  /** Empty for the bridge itself (`gpu-bridge-host --list`). */
  readonly path: readonly string[];
  /** One line on what it does. */
  readonly summary: string;
  readonly flags: FlagTable;
  readonly help: Readonly<Record<string, FlagHelp>>;
  readonly positionals: Positionals;
}

/** The entries, the bridge first; a group (`telemetry`, `cdi`) has only its subcommands here. */
export function commandCatalog(): readonly CommandEntry[] {
  const cdi = cdiFlags();
  const none = { kind: "none" } as const;
  const files = { kind: "files" } as const;
  return [
    { path: [], summary: "list or publish this host's GPUs", flags: bridgeFlags(), help: FLAG_HELP, positionals: none },
    { path: ["serve"], summary: "run the bridge as a daemon", flags: serveFlags(), help: FLAG_HELP, positionals: none },
    { path: ["stats"], summary: "print live GPU statistics", flags: statsFlags(), help: STATS_HELP, positionals: none },
    { path: ["doctor"], summary: "check this host before the first start", flags: doctorFlags(), help: DOCTOR_HELP, positionals: none },
    {
      path: ["telemetry", "push"],
      summary: "post telemetry records to the running bridge",
      flags: telemetryPushFlags(),
      help: TELEMETRY_HELP.push,
      positionals: files,
    },
    {
      path: ["telemetry", "export"],
      summary: "write the spooled telemetry as one CBOR bundle",
      flags: telemetryExportFlags(),
      help: TELEMETRY_HELP.export,
      positionals: none,
    },
    {
      path: ["audit", "verify"],
      summary: "prove the audit trail whole",
      flags: auditVerifyFlags(),
      help: AUDIT_HELP,
      positionals: files,
    },
    {
      path: ["vram", "attest-verify"],
      summary: "check a shard's attestation offline against the bridge's public key",
      flags: vramAttestVerifyFlags(),
      help: VRAM_ATTEST_HELP,
      positionals: files,
    },
    {
      path: ["models", "import"],
      summary: "stage a trained adapter in the registry",
      flags: modelsImportFlags(),
      help: MODELS_IMPORT_HELP,
      positionals: files,
    },
    {
      path: ["models", "verify"],
      summary: "re-hash a model's files and its ancestry",
      flags: modelsVerifyFlags(),
      help: MODELS_VERIFY_HELP,
      positionals: { kind: "text" },
    },
    {
      path: ["models", "watch"],
      summary: "run a command on every activation",
      flags: modelsWatchFlags(),
      help: MODELS_WATCH_HELP,
      positionals: none,
    },
    {
      path: ["peft", "export"],
      summary: "pull a LoRA export job from the Queen over the console",
      flags: peftExportFlags(),
      help: PEFT_EXPORT_HELP,
      positionals: none,
    },
    {
      path: ["tokens", "add"],
      summary: "add an API principal to a tokens file, printing its token once",
      flags: tokensAddFlags(),
      help: TOKENS_ADD_HELP,
      positionals: { kind: "text" },
    },
    {
      path: ["config", "check"],
      summary: "check a settings file for serve --config",
      flags: configCheckFlags(),
      help: CONFIG_CHECK_HELP,
      positionals: files,
    },
    {
      path: ["mock-console"],
      summary: "a local stand-in for the Cohesix console",
      flags: mockConsoleFlags(),
      help: MOCK_CONSOLE_HELP,
      positionals: none,
    },
    {
      path: ["console"],
      summary: "one request to a console, as cohsh sends it",
      flags: consoleFlags(),
      help: CONSOLE_HELP,
      positionals: { kind: "words", words: ["ls", "cat", "echo"] },
    },
    {
      path: ["cdi", "generate"],
      summary: "write a CDI spec for this host's GPUs",
      flags: cdi.generate,
      help: CDI_HELP.generate,
      positionals: none,
    },
    { path: ["cdi", "validate"], summary: "check CDI spec files", flags: cdi.validate, help: CDI_HELP.validate, positionals: files },
    {
      path: ["cdi", "apply"],
      summary: "apply CDI devices to an OCI config.json",
      flags: cdi.apply,
      help: CDI_HELP.apply,
      positionals: { kind: "text" },
    },
    {
      path: ["cdi", "list"],
      summary: "list the CDI devices the spec folders resolve",
      flags: cdi.list,
      help: CDI_HELP.list,
      positionals: none,
    },
    {
      path: ["completion"],
      summary: "print a shell completion script",
      flags: completionFlags(),
      help: COMPLETION_HELP,
      positionals: { kind: "words", words: SHELLS },
    },
  ];
}

/** How a flag's value is completed: a switch takes none; otherwise choices, a folder, a file, or free text. */
export type ValueKind =
  | { readonly kind: "switch" }
  | { readonly kind: "choice"; readonly choices: readonly string[] }
  | { readonly kind: "dir" }
  | { readonly kind: "file" }
  | { readonly kind: "text" };

/** The value `flag` of `entry` takes, from its spec and its help's argument name. */
export function valueKind(entry: CommandEntry, flag: string): ValueKind {
  const spec = entry.flags[flag]!;
  if (spec === "bool") return { kind: "switch" };
  if (spec.startsWith("choice:")) return { kind: "choice", choices: spec.slice("choice:".length).split("|") };
  if (spec.startsWith("int:")) return { kind: "text" };
  const arg = entry.help[flag]?.arg ?? "";
  if (arg === "DIR") return { kind: "dir" };
  if (arg === "FILE" || arg === "PATH") return { kind: "file" };
  return { kind: "text" };
}

/** The words that may follow `prefix` (the top-level commands for `[]`, a group's subcommands). */
export function subcommands(catalog: readonly CommandEntry[], prefix: readonly string[]): string[] {
  const out: string[] = [];
  for (const e of catalog) {
    if (e.path.length <= prefix.length || prefix.some((w, i) => e.path[i] !== w)) continue;
    const next = e.path[prefix.length]!;
    if (!out.includes(next)) out.push(next);
  }
  return out;
}
