/**
 * What every command gets from the entry point: its parsed command line, standard output, and
 * one logger factory (stderr, with the command's secrets masked).
 */
import type { Command } from "../cli/options.ts";
import type { Logger, LogLevel } from "../util/log.ts";

/** The entry point's services for a command. */
export interface CommandIo {
  /** Writes all of `text` to standard output. */
  readonly stdout: (text: string) => Promise<unknown>;
  /** All of standard input, as text. */
  readonly stdin: () => Promise<string>;
  /** A logger on stderr at `level` under `scope`, masking `secrets`. */
  readonly logger: (level: LogLevel, scope?: string, secrets?: readonly string[]) => Logger;
}

/** A command module: `run` resolves with the exit status; errors propagate to the entry point. */
export interface CommandModule<K extends Command["kind"]> {
  run(command: Extract<Command, { kind: K }>, io: CommandIo): Promise<number>;
}
