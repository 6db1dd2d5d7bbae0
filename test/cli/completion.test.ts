/**
 * Shell completions, generated from the command catalog: the catalog is held to the parser, then
 * every flag of every command is completed by a real bash (and zsh and fish where installed).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { commandCatalog, type CommandEntry, subcommands, valueKind } from "../../src/cli/catalog.ts";
import { completionScript } from "../../src/cli/completion.ts";
import { COMMAND_NAMES, parseCommand, SHELLS, UsageError } from "../../src/cli/options.ts";
import { main } from "../../src/main.ts";
import { memoryStdio, tempDir } from "../helpers.ts";

const catalog = commandCatalog();
const label = (e: CommandEntry) => e.path.join(" ") || "(the bridge)";
const flags = (e: CommandEntry) => Object.keys(e.flags).map((f) => `--${f}`).sort();

let scratch: { path: string; cleanup: () => void };
beforeAll(() => (scratch = tempDir("gbh-completion-")));
afterAll(() => scratch.cleanup());

/** Runs `script` under `shell`'s binary in the scratch folder; stdout, or the failure. */
function runShell(argv: string[], script: string): string {
  const file = join(scratch.path, `probe-${basename(argv[0]!)}`);
  writeFileSync(file, script);
  const r = Bun.spawnSync([...argv, file], { cwd: scratch.path, env: { PATH: process.env.PATH ?? "", HOME: scratch.path } });
  if (r.exitCode !== 0) throw new Error(`${argv[0]} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** `name`'s output blocks: `@@ key` lines open one, the lines after it are its words. */
function blocks(out: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  let current: string[] = [];
  for (const line of out.split("\n")) {
    if (line.startsWith("@@ ")) map.set(line.slice(3), current = []);
    else if (line !== "") current.push(line.split("\t")[0]!);
  }
  return map;
}

describe("the command catalog", () => {
  test("names every command the parser dispatches, and each path reaches its own --help", () => {
    expect(subcommands(catalog, []).sort()).toEqual([...COMMAND_NAMES].sort());
    expect(() => parseCommand(["nope"], {})).toThrow(`(commands: ${COMMAND_NAMES.join(", ")})`);
    for (const e of catalog) {
      expect({ path: label(e), kind: parseCommand([...e.path, "--help"], {}).kind }).toEqual({ path: label(e), kind: "help" });
    }
  });

  test("every flag in the catalog is one its command's parser takes, and has help (its argument name included)", () => {
    const refused: string[] = [];
    for (const e of catalog) {
      for (const flag of Object.keys(e.flags)) {
        if (e.help[flag] === undefined) refused.push(`${label(e)} --${flag}: no help`);
        try {
          parseCommand([...e.path, `--${flag}`, ...(e.flags[flag] === "bool" ? [] : ["1"])], {});
        } catch (error) {
          if (!(error instanceof UsageError)) throw error;
          if (error.message.includes(`Unknown option --${flag}`)) refused.push(`${label(e)} --${flag}: ${error.message}`);
        }
      }
      // The opposite holds too: a flag the catalog does not list is refused there.
      expect(() => parseCommand([...e.path, "--not-a-flag"], {})).toThrow("Unknown option --not-a-flag");
    }
    expect(refused).toEqual([]);
  });
});

describe("completion command", () => {
  test("prints each shell's script; a bad shell is refused naming it and the choices", async () => {
    for (const shell of SHELLS) {
      const std = memoryStdio();
      expect(await main(["completion", shell], {}, std.io)).toBe(0);
      expect(std.out.join("")).toBe(completionScript(shell));
    }
    const std = memoryStdio();
    expect(await main(["completion", "tcsh"], {}, std.io)).toBe(2);
    expect(std.err.join("")).toContain('completion: unknown shell "tcsh" (choose bash, zsh, fish)');
    expect(() => parseCommand(["completion"], {})).toThrow("completion needs a shell: bash, zsh, fish");
    expect(() => parseCommand(["completion", "bash", "zsh"], {})).toThrow('completion: unexpected argument "zsh"');
  });
});

describe("bash completion, run by bash", () => {
  /** The probe: `@@ key` then COMPREPLY, one word a line, for each command line in `lines`. */
  const probe = (lines: Record<string, string[]>) =>
    `source ${JSON.stringify(join(scratch.path, "gpu-bridge-host.bash"))}
complete -p gpu-bridge-host | sed 's/^/@@ spec /'
ask() { local key="$1"; shift; COMP_WORDS=(gpu-bridge-host "$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=()
  _gpu_bridge_host; echo "@@ $key"; for w in "\${COMPREPLY[@]}"; do echo "$w"; done; }
${Object.entries(lines).map(([key, words]) => `ask ${JSON.stringify(key)} ${words.map((w) => JSON.stringify(w)).join(" ")}`).join("\n")}
`;

  test("completes every flag of every command, and only that command's", () => {
    writeFileSync(join(scratch.path, "gpu-bridge-host.bash"), completionScript("bash"));
    const asks: Record<string, string[]> = {};
    for (const e of catalog) asks[label(e)] = [...e.path, "--"];
    const out = runShell(["bash", "--norc", "--noprofile"], probe(asks));
    expect(out).toContain("complete -F _gpu_bridge_host gpu-bridge-host");
    const got = blocks(out);
    for (const e of catalog) {
      expect({ command: label(e), flags: got.get(label(e))!.sort() }).toEqual({ command: label(e), flags: flags(e) });
    }
  });

  test("completes commands, subcommands, positional words and every choice flag's values", () => {
    const asks: Record<string, string[]> = {
      "top": [""],
      "after a flag, no command": ["--mock", ""],
      "completion": ["completion", ""],
      "console after a valued flag": ["console", "--tcp-port", "1", ""],
    };
    for (const g of ["telemetry", "models", "cdi"]) asks[g] = [g, ""];
    const choices: [string, string[]][] = [];
    for (const e of catalog) {
      for (const flag of Object.keys(e.flags)) {
        const v = valueKind(e, flag);
        if (v.kind !== "choice") continue;
        const key = `${label(e)} --${flag}`;
        asks[key] = [...e.path, `--${flag}`, ""];
        choices.push([key, [...v.choices].sort()]);
      }
    }
    const got = blocks(runShell(["bash", "--norc", "--noprofile"], probe(asks)));
    const topFlags = flags(catalog.find((e) => e.path.length === 0)!);
    expect(got.get("top")!.sort()).toEqual([...COMMAND_NAMES, ...topFlags].sort());
    expect(got.get("after a flag, no command")).toEqual([]);
    expect(got.get("completion")).toEqual(["bash", "zsh", "fish"]);
    expect(got.get("console after a valued flag")).toEqual(["ls", "cat", "echo"]);
    for (const g of ["telemetry", "models", "cdi"]) expect(got.get(g)).toEqual(subcommands(catalog, [g]));
    expect(choices.length).toBeGreaterThan(8);
    for (const [key, want] of choices) expect({ key, values: got.get(key)!.sort() }).toEqual({ key, values: want });
  });

  test("completes file names for a flag that takes a FILE or DIR", () => {
    writeFileSync(join(scratch.path, "spec-one.json"), "{}");
    const asks = {
      dir: ["serve", "--state-dir", "spec-"],
      file: ["cdi", "apply", "--input", "spec-"],
      int: ["serve", "--window", "spec-"],
    };
    const got = blocks(runShell(["bash", "--norc", "--noprofile"], probe(asks)));
    expect(got.get("file")).toEqual(["spec-one.json"]);
    expect(got.get("dir")).toEqual([]); // a file is no folder
    expect(got.get("int")).toEqual([]);
  });
});

const zsh = Bun.which("zsh");
const fish = Bun.which("fish");

describe("zsh completion", () => {
  test.skipIf(zsh === null)("parses (zsh -n), and hands _arguments every flag of every command", () => {
    const file = join(scratch.path, "_gpu-bridge-host");
    writeFileSync(file, completionScript("zsh"));
    runShell([zsh!, "-n"], completionScript("zsh"));
    // _arguments stubbed to print its specs: the dispatch to the command's specs is what runs.
    const asks = catalog.map((e) => {
      const words = ["gpu-bridge-host", ...e.path, "--"].map((w) => JSON.stringify(w)).join(" ");
      return `words=(${words}); CURRENT=${e.path.length + 2}; print -r -- "@@ ${label(e)}"; _gpu_bridge_host`;
    });
    const out = runShell(
      [zsh!, "-f"],
      `compdef() { :; }\nsource ${JSON.stringify(file)}\n_arguments() { print -rl -- "$@"; }\n${asks.join("\n")}\n`,
    );
    const got = blocks(out);
    for (const e of catalog) {
      const specs = got.get(label(e))!.filter((s) => s.startsWith("--")).map((s) => s.replace(/\[.*$/, "")).sort();
      expect({ command: label(e), flags: specs }).toEqual({ command: label(e), flags: flags(e) });
    }
  });

  test("holds every flag of every command in that command's branch (the structural check, zsh or not)", () => {
    const script = completionScript("zsh");
    for (const e of catalog) {
      const start = script.indexOf(`    '${e.path.join(" ")}') _arguments`);
      expect(start).toBeGreaterThan(0);
      const branch = script.slice(start, script.indexOf(" ;;", start));
      for (const f of flags(e)) expect(branch).toContain(`'${f}[`);
    }
  });
});

describe("fish completion", () => {
  test.skipIf(fish === null)("parses (fish -n), and `complete -C` offers every flag of every command", () => {
    const file = join(scratch.path, "gpu-bridge-host.fish");
    writeFileSync(file, completionScript("fish"));
    runShell([fish!, "-n"], completionScript("fish"));
    const asks = catalog.map((e) => `echo "@@ ${label(e)}"; complete -C ${JSON.stringify(["gpu-bridge-host", ...e.path, "-"].join(" "))}`);
    const extra = [
      `echo "@@ top"; complete -C "gpu-bridge-host "`,
      `echo "@@ console words"; complete -C "gpu-bridge-host console --tcp-port 1 "`,
    ];
    const got = blocks(runShell([fish!, "--no-config"], `source ${JSON.stringify(file)}\n${[...asks, ...extra].join("\n")}\n`));
    for (const e of catalog) {
      expect({ command: label(e), flags: got.get(label(e))!.sort() }).toEqual({ command: label(e), flags: flags(e) });
    }
    expect(got.get("top")!.sort()).toEqual([...COMMAND_NAMES].sort());
    expect(got.get("console words")!.sort()).toEqual(["cat", "echo", "ls"]);
  });

  test("gives every flag of every command a line under that command's condition (the structural check)", () => {
    const script = completionScript("fish");
    for (const e of catalog) {
      for (const f of Object.keys(e.flags)) {
        expect(script).toContain(`complete -c gpu-bridge-host -n '__gpu_bridge_host_on \\'${e.path.join(" ")}\\'' -l ${f}`);
      }
    }
  });
});
