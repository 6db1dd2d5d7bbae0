/**
 * The cap steps (`--mps`, `--mig`): they need an MPS-capable GPU (Volta or newer) and a GPU in
 * MIG mode with instances created, so they run only when asked, and then never skip. One
 * `serve --cdi-dir` (with `--mps` when asked) on this host; a lease taken through its API; a CUDA
 * client (mps-client.ts) run with the env the lease's CDI device gives a container, which must
 * allocate under the cap and be refused over it; the daemon gone when the bridge stops. For MIG,
 * the first MIG device of the bridge's spec leased by UUID: its nodes, a second claim refused,
 * an allocation on it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import process from "node:process";
import type { GpuCheckOptions } from "./args.ts";
import { run } from "./steps-cli.ts";
import { fail, ms, pass, type Row } from "./table.ts";

const TOKEN = "gpu-check-0123456789abcdef0123";
const CLIENT = join(import.meta.dirname, "mps-client.ts");
type Spec = { devices: { name: string; containerEdits: { env?: string[]; deviceNodes?: { path: string; hostPath?: string }[] } }[] };

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

/** A running `serve`: its API, its CDI spec and its stderr. */
interface Served {
  readonly base: string;
  readonly spec: () => Spec;
  readonly stderr: () => string;
  readonly stop: () => Promise<number | null>;
}

async function serve(o: GpuCheckOptions, tmp: string, mps: boolean): Promise<Served> {
  const port = await freePort();
  const args = ["serve", ...o.serveArgs, "--cdi-dir", join(tmp, "cdi"), "--state-dir", join(tmp, "state"), "--listen", `127.0.0.1:${port}`];
  const child: ChildProcess = spawn(o.bridge[0]!, [...o.bridge.slice(1), ...args, "--api-token", TOKEN, ...(mps ? ["--mps"] : [])], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => void (err += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const base = `http://127.0.0.1:${port}`;
  const until = performance.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode} at start: ${err.trim().slice(-400)}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch { /* not listening yet */ }
    if (performance.now() > until) {
      child.kill("SIGKILL");
      throw new Error(`serve did not answer on ${base} within 60 s: ${err.trim().slice(-400)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    spec: () => JSON.parse(readFileSync(join(tmp, "cdi", "gpu-bridge-host.json"), "utf8")) as Spec,
    stderr: () => err,
    stop: () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

async function lease(base: string, body: Record<string, unknown>) {
  const res = await fetch(`${base}/v1/leases`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ worker_id: "gpu-check", mem_mb: 256, streams: 4, ttl_s: 600, ...body }),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> & { error?: { message: string } } };
}

/** Runs the CUDA client for `mib` MiB with `env` added (a container's env, host paths for mounts). */
function client(mib: number, env: Record<string, string>): { ok: boolean; code?: number | null; message?: string } {
  const r = run([process.execPath, CLIENT, String(mib)], 60_000, { ...process.env, ...env });
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as { ok: boolean; code?: number };
  } catch {
    return { ok: false, code: null, message: `exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300)}` };
  }
}

const envOf = (env: readonly string[] = []) => new Map(env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));

/** MPS: a daemon per GPU, a lease's cap holding for a real client, the daemon gone with the bridge. */
export async function mpsSteps(o: GpuCheckOptions, tmp: string): Promise<Row[]> {
  const need = " (needs an MPS-capable GPU)";
  const rows: Row[] = [];
  const t0 = performance.now();
  let s: Served;
  try {
    s = await serve(o, tmp, true);
  } catch (error) {
    return [fail(`mps daemon per GPU${need}`, (error as Error).message)];
  }
  const pipe = join(tmp, "state", "mps", "GPU-0", "pipe");
  const started = existsSync(join(pipe, "control"));
  try {
    // What the bridge said about its daemons (its `mps` log lines) is the reason when there is none.
    const said = s.stderr().split("\n").filter((l) => /\bmps: /.test(l)).join("\n").slice(-600);
    rows.push(
      started
        ? pass(`mps daemon per GPU${need}`, ms(performance.now() - t0), `serve --mps up; GPU-0's daemon at ${pipe}`)
        : fail(`mps daemon per GPU${need}`, `no control endpoint in ${pipe}: ${said || s.stderr().trim().slice(-400)}`),
    );
    const l = await lease(s.base, { gpu_id: "GPU-0" });
    const dev = s.spec().devices.find((d) => d.name === l.body.id);
    const env = envOf(dev?.containerEdits.env);
    const cap = env.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT");
    if (l.status !== 201 || dev === undefined || cap !== "0=256M") {
      rows.push(
        fail(
          `mps memory cap${need}`,
          `lease ${l.status}: ${JSON.stringify(l.body)}; device env ${JSON.stringify(dev?.containerEdits.env)}`,
        ),
      );
    } else {
      // As the container would run: the pipe folder at its host path, the cap as given.
      const asContainer = { ...Object.fromEntries(env), CUDA_MPS_PIPE_DIRECTORY: pipe };
      const t1 = performance.now();
      const under = client(64, asContainer);
      const over = client(512, asContainer);
      const detail = `cap ${cap}, SM share ${env.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE") ?? "whole"}%: 64 MiB ${
        under.ok ? "allocated" : `refused (${under.message})`
      }, 512 MiB ${over.ok ? "allocated" : `refused (CUresult ${over.code})`}`;
      rows.push(
        under.ok && !over.ok && over.code === 2
          ? pass(`mps memory cap${need}`, ms(performance.now() - t1), detail)
          : fail(`mps memory cap${need}`, `${detail}; want 64 MiB allocated and 512 MiB refused with CUDA_ERROR_OUT_OF_MEMORY (2)`),
      );
    }
  } catch (error) {
    rows.push(fail(`mps memory cap${need}`, (error as Error).message));
  } finally {
    const code = await s.stop();
    rows.push(
      started && !existsSync(join(pipe, "control")) && code === 0
        ? pass(`mps daemon stopped with the bridge${need}`, "", `serve exited 0; ${pipe}/control gone`)
        : fail(
          `mps daemon stopped with the bridge${need}`,
          started
            ? `serve exited ${code}; control endpoint ${existsSync(join(pipe, "control")) ? "still there" : "gone"}`
            : "no daemon was started to stop",
        ),
    );
  }
  return rows;
}

/** MIG: the first MIG device of the bridge's spec leased by UUID, its nodes, a second claim refused, an allocation on it. */
export async function migSteps(o: GpuCheckOptions, tmp: string): Promise<Row[]> {
  const step = "mig lease by UUID (needs a GPU in MIG mode)";
  let s: Served;
  try {
    s = await serve(o, tmp, false);
  } catch (error) {
    return [fail(step, (error as Error).message)];
  }
  try {
    const uuid = s.spec().devices.map((d) => d.name).find((n) => n.startsWith("MIG-"));
    if (uuid === undefined) {
      return [fail(step, "the bridge's CDI spec holds no MIG device: enable MIG on a GPU and create GPU and compute instances first")];
    }
    const t0 = performance.now();
    const a = await lease(s.base, { gpu_id: uuid });
    const b = await lease(s.base, { gpu_id: uuid, worker_id: "gpu-check-2" });
    const nodes = s.spec().devices.find((d) => d.name === a.body.id)?.containerEdits.deviceNodes ?? [];
    const missing = nodes.filter((n) => !existsSync(n.hostPath ?? n.path)).map((n) => n.path);
    const caps = nodes.filter((n) => n.path.startsWith("/dev/nvidia-caps/")).length;
    const alloc = client(64, { CUDA_VISIBLE_DEVICES: uuid });
    const detail = `${uuid}: lease ${a.status} (${a.body.mig_uuid === uuid ? "holds it" : "no mig_uuid"}), ${nodes.length} nodes ` +
      `(${caps} capability), second claim ${b.status}, 64 MiB on it ${alloc.ok ? "allocated" : `refused (${alloc.message ?? alloc.code})`}`;
    const ok = a.status === 201 && a.body.mig_uuid === uuid && caps === 2 && missing.length === 0 && b.status === 409 && alloc.ok;
    return [
      ok
        ? pass(step, ms(performance.now() - t0), detail)
        : fail(step, `${detail}${missing.length ? `; missing ${missing.join(", ")}` : ""}`),
    ];
  } catch (error) {
    return [fail(step, (error as Error).message)];
  } finally {
    await s.stop();
  }
}
