/**
 * Running the bridge (or its mock console) as a child process, for tests and benchmarks (Bun
 * only, like the rest of test/): its stderr is collected as it comes, and `waitFor` waits for
 * a log line, such as the one that names the port it listens on.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const REPO_ROOT = join(import.meta.dir, "..");
export const MAIN_TS = join(REPO_ROOT, "src", "main.ts");

export interface Child {
  readonly proc: ReturnType<typeof Bun.spawn>;
  /** Everything it wrote to stderr so far. */
  log(): string;
  /** Resolves with the first match of `re` in its stderr; rejects if it exits or `ms` pass first. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
}

/** Spawns `cmd` (default: Bun running src/main.ts with `args`). */
export function spawnBridge(args: readonly string[], cmd: readonly string[] = [process.execPath, MAIN_TS]): Child {
  const proc = Bun.spawn([...cmd, ...args], { stderr: "pipe", stdout: "ignore", cwd: "/" });
  let text = "";
  let ended = false;
  void (async () => {
    const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ended = true;
  })();
  return {
    proc,
    log: () => text,
    async waitFor(re, ms = 10_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = re.exec(text);
        if (m !== null) return m;
        if (ended) throw new Error(`${cmd.at(-1)} ${args.join(" ")} exited before printing ${re}: ${text}`);
        if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${re} in: ${text}`);
        await Bun.sleep(5);
      }
    },
  };
}

/** The port in a "listening on http://127.0.0.1:N" or "listening on 127.0.0.1:N" line. */
export const LISTENING = /listening on (?:http:\/\/)?127\.0\.0\.1:(\d+)/;

/** The state letter and parent pid of a process (/proc/<pid>/stat), or null once it is gone. */
function procStat(pid: number | string): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

/** The `run-kernel` job children of `ppid`, zombies left out unless `zombies` is true. */
export function kernelChildren(ppid: number, zombies = false): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(name);
    if (st === null || st.ppid !== ppid || (!zombies && st.state === "Z")) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes("run-kernel")) out.push(Number(name));
    } catch { /* gone */ }
  }
  return out;
}

/** Whether `pid` still runs: it exists and is not a zombie. */
export const alive = (pid: number) => (procStat(pid)?.state ?? "Z") !== "Z";
