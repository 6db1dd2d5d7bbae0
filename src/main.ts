#!/usr/bin/env bun
/**
 * gpu-bridge-host entry point: parses the command line, then runs the command's module from a
 * table of lazy imports (src/commands/, one file per command). Start-up stays light: `--list`
 * loads no HTTP, CBOR, FFI or socket code. The modules on that path use the global `process`
 * (Bun and Deno 2 both have it): `import process from "node:process"` alone costs a quarter of
 * a million instructions at start.
 */
import { type Command, parseCommand, UsageError } from "./cli/options.ts";
import { createLogger, type LogLevel } from "./util/log.ts";
import { readStdin, writeStdout } from "./runtime/stdio.ts";
import type { CommandIo, CommandModule } from "./commands/types.ts";
// The one command loaded up front: `--list` is the start-up that is benchmarked, and a
// dynamic import costs it a chunk load and an async hop (about 3% of its instructions).
import { run as runBridge } from "./commands/bridge.ts";

/** Each command's module, loaded only when that command runs (`bridge` excepted, see above). */
const COMMANDS: { readonly [K in Command["kind"]]: () => Promise<CommandModule<K>> } = {
  "bridge": () => Promise.resolve({ run: runBridge }),
  "serve": () => import("./commands/serve.ts"),
  "help": () => import("./commands/help.ts"),
  "version": () => import("./commands/version.ts"),
  "stats": () => import("./commands/stats.ts"),
  "doctor": () => import("./commands/doctor.ts"),
  "mock-console": () => import("./commands/mock-console.ts"),
  "console": () => import("./commands/console.ts"),
  "run-kernel": () => import("./commands/run-kernel.ts"),
  "telemetry-push": () => import("./commands/telemetry-push.ts"),
  "telemetry-export": () => import("./commands/telemetry-export.ts"),
  "models-import": () => import("./commands/models-import.ts"),
  "models-verify": () => import("./commands/models-verify.ts"),
  "models-watch": () => import("./commands/models-watch.ts"),
  "peft-export": () => import("./commands/peft-export.ts"),
  "audit-verify": () => import("./commands/audit.ts"),
  "vram-attest-verify": () => import("./commands/vram.ts"),
  "tokens-add": () => import("./commands/tokens.ts"),
  "config-check": () => import("./commands/config.ts"),
  "completion": () => import("./commands/completion.ts"),
  // CDI code (valibot, yaml, node:fs) loads only for `cdi`: never on the --list path.
  "cdi-generate": () => import("./commands/cdi.ts"),
  "cdi-validate": () => import("./commands/cdi.ts"),
  "cdi-apply": () => import("./commands/cdi.ts"),
  "cdi-list": () => import("./commands/cdi.ts"),
};

/** Whether anything was written to stderr: only then is it worth flushing before exit. */
let stderrUsed = false;

/** Writes to stderr (logs and errors), remembering that it was used. */
function writeStderr(text: string): void {
  stderrUsed = true;
  process.stderr.write(text);
}

/** The standard streams a command line runs on; tests pass their own to `main`. */
export interface StdIo {
  readonly stdout: (text: string) => Promise<unknown>;
  readonly stderr: (text: string) => void;
  /** All of standard input, as text. */
  readonly stdin: () => Promise<string>;
}

const PROCESS_IO: StdIo = { stdout: writeStdout, stderr: writeStderr, stdin: readStdin };

/** Runs the command line and resolves with the exit status. */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  std: StdIo = PROCESS_IO,
): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    // The console client, the cdi commands and completion have help of their own.
    const topic = argv[0] === "console" || argv[0] === "cdi" || argv[0] === "completion" ? ` ${argv[0]}` : "";
    std.stderr(`gpu-bridge-host: ${error.message}\nTry 'gpu-bridge-host${topic} --help'.\n`);
    return 2;
  }
  // The one logger factory: lines on stderr, plain or JSON as the command's --log-format says.
  const format = "options" in command && "logFormat" in command.options ? command.options.logFormat : "text";
  const io: CommandIo = {
    stdout: std.stdout,
    stdin: std.stdin,
    logger: (level: LogLevel, scope?: string, secrets?: readonly string[]) =>
      createLogger({ level, format, write: std.stderr, ...(secrets !== undefined && { secrets }) }, scope),
  };
  try {
    if (command.kind === "bridge") return await runBridge(command, io);
    const module = (await COMMANDS[command.kind]()) as CommandModule<typeof command.kind>;
    return await module.run(command as never, io);
  } catch (error) {
    // A command's failure, in one paragraph on stderr; the exit status is 1 (2 for a setting refused as a flag would be).
    std.stderr(`gpu-bridge-host: ${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}

/**
 * Exits as soon as the command is done: letting the event loop wind down by itself costs about
 * a millisecond, a sixth of a `--list`. Stdout was awaited already; stderr is flushed first if
 * it was used (touching it otherwise would cost its stream set-up, ~12 ms in a compiled binary).
 */
function exit(code: number): void {
  if (!stderrUsed) process.exit(code);
  process.stderr.write("", () => process.exit(code));
}

if (import.meta.main) {
  // No top-level await: `bun build --compile --bytecode` needs a module it can precompile.
  main(process.argv.slice(2), process.env).then(exit, (error: unknown) => {
    writeStderr(`gpu-bridge-host: internal error: ${error instanceof Error ? error.stack : String(error)}\n`);
    return exit(1);
  });
}
