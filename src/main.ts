#!/usr/bin/env bun
/**
 * gpu-bridge-host entry point. Start-up stays light: `--list` loads no HTTP, CBOR, FFI or
 * socket code; everything else is imported when a command needs it. The modules on that path
 * use the global `process` (Bun and Deno 2 both have it): `import process from "node:process"`
 * alone costs a quarter of a million instructions at start.
 */
import { parseCommand, UsageError } from "./cli/options.ts";
import { VERSION } from "./version.ts";
import { createLogger } from "./log.ts";
import { currentNamespace } from "./bridge.ts";
import { renderList } from "./namespace/list.ts";
import { writeStdout } from "./runtime/stdio.ts";
import { stopSignal } from "./util/signals.ts";

/** Whether anything was written to stderr: only then is it worth flushing before exit. */
let stderrUsed = false;

/** Writes to stderr (logs and errors), remembering that it was used. */
function writeStderr(text: string): void {
  stderrUsed = true;
  process.stderr.write(text);
}

/** Reports a command's failure in one paragraph on stderr; the exit status is 1. */
function failed(error: unknown): number {
  writeStderr(`gpu-bridge-host: ${error instanceof Error ? error.message : String(error)}\n`);
  return 1;
}

/** Runs the command line and resolves with the exit status. */
export async function main(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  if (argv[0] === "console") {
    // The console client (src/console-client-command.ts) parses its own flags.
    try {
      const [{ consoleCommand }, runtime] = await Promise.all([import("./console-client-command.ts"), import("./runtime/mod.ts").then((m) => m.detectRuntime())]);
      return await consoleCommand(argv.slice(1), env, { connect: runtime.connect, out: writeStdout, err: writeStderr });
    } catch (error) {
      if (!(error instanceof UsageError)) return failed(error);
      writeStderr(`gpu-bridge-host: ${error.message}\nTry 'gpu-bridge-host console --help'.\n`);
      return 2;
    }
  }
  let command;
  try {
    command = parseCommand(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    writeStderr(`gpu-bridge-host: ${error.message}\nTry 'gpu-bridge-host --help'.\n`);
    return 2;
  }
  if (command.kind === "help") {
    // Loaded on demand: several kilobytes of text that every other start would pay for.
    const { MOCK_CONSOLE_USAGE, MODELS_USAGE, SERVE_USAGE, STATS_USAGE, TELEMETRY_USAGE, USAGE } = await import("./cli/usage.ts");
    const topics: Record<string, string> = {
      "mock-console": MOCK_CONSOLE_USAGE,
      serve: SERVE_USAGE,
      stats: STATS_USAGE,
      telemetry: TELEMETRY_USAGE,
      models: MODELS_USAGE,
    };
    await writeStdout(topics[command.topic ?? ""] ?? USAGE);
    return 0;
  }
  if (command.kind === "version") {
    await writeStdout(`gpu-bridge-host ${VERSION}\n`);
    return 0;
  }
  if (command.kind === "mock-console") {
    const log = createLogger(
      { level: command.options.logLevel, write: (l) => void writeStderr(l), secrets: [command.options.authToken] },
      "mock-console",
    );
    const { mockConsoleCommand } = await import("./mock-console-command.ts");
    return await mockConsoleCommand(command.options, log);
  }
  if (command.kind === "run-kernel") {
    let input = "";
    for await (const chunk of process.stdin) input += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    const { runKernel } = await import("./job/run-kernel.ts");
    const outcome = await runKernel(JSON.parse(input));
    await writeStdout(JSON.stringify(outcome) + "\n");
    return outcome.ok ? 0 : 1;
  }
  if (command.kind === "telemetry-push" || command.kind === "telemetry-export" || command.kind === "models-import") {
    const log = createLogger({ level: "info", write: (l) => void writeStderr(l) });
    try {
      const { toolCommand } = await import("./tool-commands.ts");
      return await toolCommand(command, log);
    } catch (error) {
      return failed(error);
    }
  }
  if (command.kind === "stats") {
    const log = createLogger({ level: command.options.logLevel, write: (l) => void writeStderr(l) });
    try {
      const { statsCommand } = await import("./stats-command.ts");
      return await statsCommand(command.options, log, writeStdout);
    } catch (error) {
      return failed(error);
    }
  }
  const options = command.options;
  const log = createLogger({
    level: options.logLevel,
    write: (line) => void writeStderr(line),
    secrets: [options.authToken],
  });
  for (const w of command.warnings) log.warn(w);
  try {
    if (command.kind === "serve" || (options.publish && options.intervalMs !== undefined)) {
      // Before anything slow: a SIGTERM during start-up must still end in a clean exit.
      const signal = stopSignal();
      const { daemonCommand } = await import("./daemon-command.ts");
      return await daemonCommand(options, log, command.kind === "serve" ? "serve" : "compat", signal);
    }
    const ns = await currentNamespace(options, log);
    if (options.list) await writeStdout(renderList(ns));
    if (!options.publish) return 0;
    const { publishCommand } = await import("./publish-command.ts");
    return await publishCommand(options, ns, log);
  } catch (error) {
    return failed(error);
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
