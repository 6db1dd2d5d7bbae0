/**
 * `make demo-lora`: the LoRA loop end to end on the mock, narrated step by step with the time
 * each took (the README's "Telemetry and the model lifecycle"; docs/protocol.md section 10). A stand-in inference process posts telemetry to the bridge, the
 * bridge forwards it to the mock Queen, the Queen exports a training job, `peft export` pulls it,
 * a stand-in trainer writes an adapter (random weights, real files), `models import` stages it,
 * it is approved and activated (sealed under the inference process's lease where the bridge can),
 * the VM's /gpu/models/active changes, and the inference process hears of it from GET /v1/events.
 *
 * A step the bridge cannot do yet is said so plainly (what is missing and why) and the loop goes
 * on where it can. Exit status: 0 when every step that ran succeeded, 1 otherwise.
 *
 * `bun scripts/demo-lora.ts --inference URL N TOKEN_FILE` is the stand-in inference process itself.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { startMockConsole } from "../mock/console/server.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { openSession, sendAll } from "../src/console/publish.ts";
import { sha256Hex } from "../src/util/sha256.ts";

const REPO = join(import.meta.dir, "..");
const MAIN = join(REPO, "src", "main.ts");
const DEVICE = "edge-demo";
const TOKEN = "demo-token";
const RECORDS = 24;
const NEW_MODEL = "demo-lora-v2";

/** A step this bridge cannot do yet (not a failure of one it can). */
class Unavailable extends Error {}

if (process.argv[2] === "--inference") await inference(process.argv[3]!, Number(process.argv[4]), process.argv[5]!);
else process.exit(await demo());

/** The demo: returns the exit status. */
async function demo(): Promise<number> {
  const t0 = performance.now();
  const work = mkdtempSync(join(tmpdir(), "gbh-demo-lora-"));
  const unavailable: string[] = [];
  let failed = false;
  let n = 0;
  const say = (text: string) => console.log(text);
  /** Runs one step, printing what it did and how long it took. */
  const step = async (title: string, body: () => Promise<string>): Promise<boolean> => {
    const start = performance.now();
    n++;
    try {
      const what = await body();
      say(`[${String(n).padStart(2)}] ${title} (${Math.round(performance.now() - start)} ms)\n     ${what.replaceAll("\n", "\n     ")}`);
      return true;
    } catch (error) {
      const message = (error as Error).message;
      if (error instanceof Unavailable) {
        unavailable.push(`${title}: ${message}`);
        say(`[${String(n).padStart(2)}] ${title}: NOT AVAILABLE YET: ${message}`);
        return false;
      }
      failed = true;
      say(`[${String(n).padStart(2)}] ${title}: FAILED: ${message}`);
      return false;
    }
  };
  const runtime = bunRuntime();
  const mock = await startMockConsole(runtime, { token: TOKEN });
  mock.state.export.policy = { minRecords: RECORDS, windowMs: 600_000 };
  const registry = join(work, "registry");
  cpSync(join(REPO, "mock", "registry"), registry, { recursive: true });
  let bridge: ReturnType<typeof Bun.spawn> | null = null;
  let infer: ReturnType<typeof Bun.spawn> | null = null;
  let api = "";
  const tokenFile = join(work, "state", "api-token");
  const auth = () => ({ authorization: `Bearer ${readFileSync(tokenFile, "utf8").trim()}`, "content-type": "application/json" });
  let inferLog = "";
  let job = "";
  let exportDir = "";
  const adapter = join(work, "trained", NEW_MODEL);
  try {
    say(`LoRA loop on the mock: the mock Queen listens on 127.0.0.1:${mock.port}; work folder ${work}`);
    if (
      !await step("the bridge starts, publishing to the mock VM and forwarding telemetry", async () => {
        bridge = Bun.spawn([
          process.execPath,
          MAIN,
          "serve",
          "--mock",
          "--publish",
          "--registry",
          registry,
          "--tcp-port",
          String(mock.port),
          "--auth-token",
          TOKEN,
          "--state-dir",
          join(work, "state"),
          "--listen",
          "127.0.0.1:0",
          "--device-id",
          DEVICE,
        ], { stderr: "pipe", stdout: "ignore" });
        const m = await waitFor(lines(bridge.stderr as ReadableStream<Uint8Array>), /listening on (http:\/\/127\.0\.0\.1:\d+)/, 20_000);
        api = m[1]!;
        await until(() => mock.state.publishes > 0, 10_000, "the first snapshot");
        return `API on ${api}; the VM's /gpu holds ${mock.state.tree!.nodes.length} GPUs, active model ${mock.state.tree!.active}`;
      })
    ) return finish();

    await step(`a stand-in inference process takes a lease and posts ${RECORDS} telemetry records`, async () => {
      infer = Bun.spawn([process.execPath, import.meta.path, "--inference", api, String(RECORDS), tokenFile], {
        stdout: "pipe",
        stderr: "inherit",
      });
      const out = lines(infer.stdout as ReadableStream<Uint8Array>);
      void (async () => {
        for await (const l of out.tail()) inferLog += l + "\n";
      })();
      await until(() => /posted \d+ records/.test(inferLog), 10_000, "the inference process's telemetry");
      return inferLog.trim().split("\n").map((l) => `inference: ${l}`).join("\n");
    });

    await step("the bridge forwards them to the Queen's ingest", async () => {
      await until(() => count(mock.state.queen.delivered(DEVICE)) >= RECORDS, 20_000, `${RECORDS} records at the Queen`);
      const segs = mock.state.queen.devices.get(DEVICE)!.segments.map((s) => s.id);
      return `${count(mock.state.queen.delivered(DEVICE))} records in /queen/telemetry/${DEVICE}/seg/ (${segs.join(", ")})`;
    });

    await step(`the mock Queen's export policy (${RECORDS} records of one base model in 600 s) exports a job`, async () => {
      await until(() => mock.state.export.jobs.size > 0, 10_000, "an export job");
      const j = [...mock.state.export.jobs.values()][0]!;
      job = j.id;
      return `/queen/export/lora_jobs/${j.id}/: ${j.records} records of ${j.baseModel} from ${j.devices.join(", ")}`;
    });

    await step("peft export pulls the job over the console", async () => {
      const out = await cli(["peft", "export", "--out", join(work, "export"), "--tcp-port", String(mock.port), "--auth-token", TOKEN]);
      exportDir = join(work, "export", job);
      return out.trim();
    });

    await step("a STAND-IN trainer writes an adapter (random weights, real files; no training happens)", () => {
      const base = readFileSync(join(exportDir, "base_model.ref"), "utf8").trim();
      const policy = readFileSync(join(exportDir, "policy.toml"), "utf8");
      const win = (k: string) => Number(new RegExp(`^${k} = (\\d+)`, "m").exec(policy)?.[1]);
      mkdirSync(adapter, { recursive: true });
      const weights = standInSafetensors(8, 64);
      writeFileSync(join(adapter, "adapter.safetensors"), weights);
      writeFileSync(
        join(adapter, "lora.json"),
        JSON.stringify(
          {
            stand_in: "random weights written by scripts/demo-lora.ts; not a trained adapter",
            base_model: base,
            job_id: job,
            telemetry_window: { start_ms: win("window_start_ms"), end_ms: win("window_end_ms") },
            rank: 8,
            alpha: 16,
            target_modules: ["q_proj", "v_proj"],
          },
          null,
          2,
        ) + "\n",
      );
      writeFileSync(join(adapter, "metrics.json"), JSON.stringify({ stand_in: true, eval_loss: null }) + "\n");
      return Promise.resolve(
        `${adapter}: adapter.safetensors (${weights.length} bytes, sha256 ${sha256Hex(weights).slice(0, 16)}…), lora.json, metrics.json`,
      );
    });

    await step(`models import stages it as ${NEW_MODEL} with its provenance`, async () => {
      const help = await cli(["models", "import", "--help"]);
      if (help.includes("--from-export")) {
        await cli(["models", "import", adapter, "--id", NEW_MODEL, "--registry", registry, "--from-export", exportDir]);
        const manifest = readFileSync(join(registry, "available", NEW_MODEL, "manifest.toml"), "utf8");
        const keys = /^(base|approval|job_id|telemetry_window_start_ms|telemetry_window_end_ms|parent_sha256|export_job_id) = .*$/gm;
        return `${registry}/available/${NEW_MODEL}/manifest.toml records:\n${manifest.match(keys)?.join("\n") ?? "(no provenance)"}`;
      }
      await cli(["models", "import", adapter, "--id", NEW_MODEL, "--registry", registry, "--job-id", job]);
      unavailable.push(
        "models import --from-export: this bridge has no --from-export yet, so the import took the parent and window from " +
          "lora.json and the job from --job-id instead of reading the export bundle",
      );
      return `imported into ${registry}/available/${NEW_MODEL} (without --from-export: not available yet)`;
    });

    await step("the bridge's registry watch sees the new model (GET /v1/models)", async () => {
      let listed: string[] = [];
      await until(
        async () => {
          const cat = await (await fetch(`${api}/v1/models`)).json() as { available: { model_id: string }[] };
          listed = cat.available.map((m) => m.model_id);
          return listed.includes(NEW_MODEL);
        },
        10_000,
        `${NEW_MODEL} in GET /v1/models`,
      );
      return `available: ${listed.join(", ")}`;
    });

    await step("approval: PUT /v1/models/{id}/approval", async () => {
      const r = await fetch(`${api}/v1/models/${NEW_MODEL}/approval`, {
        method: "PUT",
        headers: auth(),
        body: JSON.stringify({ status: "approved", reason: "demo: stand-in adapter" }),
      });
      if (r.status === 404 || r.status === 405) {
        throw new Unavailable("the bridge has no approval route (activation is not gated by approval yet)");
      }
      if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
      return `${r.status} ${await r.text()}`;
    });

    await step("activation, sealed under the inference process's lease: PUT /v1/models/active", async () => {
      const lease = /lease (\S+)/.exec(inferLog)?.[1];
      const put = (body: unknown) => fetch(`${api}/v1/models/active`, { method: "PUT", headers: auth(), body: JSON.stringify(body) });
      let r = await put({ model_id: NEW_MODEL, seal_lease: lease });
      let text = await r.text();
      if (r.status === 422 && text.includes("seal_lease")) {
        unavailable.push("sealed activation (seal_lease): the bridge does not take seal_lease yet; the model was activated unsealed");
        r = await put({ model_id: NEW_MODEL });
        text = await r.text();
        if (!r.ok) throw new Error(`${r.status} ${text}`);
        return `${r.status} ${text} (unsealed: seal_lease not available yet)`;
      }
      if (!r.ok) throw new Error(`${r.status} ${text}`);
      return `${r.status} ${text}`;
    });

    await step("the VM's /gpu/models/active changes (read through the console)", async () => {
      let seen = "";
      await until(async () => (seen = await catActive(mock.port)) === NEW_MODEL, 10_000, `/gpu/models/active to read ${NEW_MODEL}`);
      return `CAT /gpu/models/active -> ${seen}`;
    });

    await step("the inference process hears model.activated from GET /v1/events and swaps", async () => {
      await until(() => /swap|events not available/.test(inferLog), 10_000, "the inference process's report");
      const line = inferLog.trim().split("\n").find((l) => /swap|events not available/.test(l))!;
      if (line.includes("events not available")) throw new Unavailable(line.replace(/^.*events not available: /, "GET /v1/events: "));
      return `inference: ${line}`;
    });
    return finish();
  } finally {
    (infer as ReturnType<typeof Bun.spawn> | null)?.kill();
    (bridge as ReturnType<typeof Bun.spawn> | null)?.kill();
    await (bridge as ReturnType<typeof Bun.spawn> | null)?.exited;
    await mock.close();
    rmSync(work, { recursive: true, force: true });
  }

  function finish(): number {
    say(`\nThe loop took ${((performance.now() - t0) / 1000).toFixed(1)} s.`);
    if (unavailable.length > 0) say(`Not available yet:\n${unavailable.map((u) => `  - ${u}`).join("\n")}`);
    say(failed ? "demo-lora: FAILED" : "demo-lora: every step that ran succeeded");
    return failed ? 1 : 0;
  }
}

/** The stand-in inference process: a lease, telemetry, then the event stream until a model.activated. */
async function inference(api: string, records: number, tokenFile: string): Promise<void> {
  const auth = { authorization: `Bearer ${readFileSync(tokenFile, "utf8").trim()}` };
  const json = { "content-type": "application/json", ...auth };
  const lease = await fetch(`${api}/v1/leases`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "inference-1", mem_mb: 1024, streams: 1, ttl_s: 600 }),
  });
  const leaseBody = await lease.json() as { id?: string; lease_id?: string };
  console.log(`holding lease ${leaseBody.id ?? leaseBody.lease_id ?? "?"} on GPU-0 (${lease.status})`);
  // The stream opens before the telemetry goes, so no change is missed.
  const events = await fetch(`${api}/v1/events?types=model.*`, { headers: { accept: "text/event-stream" } });
  const now = Date.now();
  const ndjson = Array.from({ length: records }, (_, i) =>
    JSON.stringify({
      schema_version: "gpu-telemetry/v1",
      device_id: DEVICE,
      time_window: { start_ms: now - (records - i) * 1000, end_ms: now - (records - i) * 1000 + 999 },
      token_count: 200 + i,
      latency_histogram: { le_ms: [10, 50, 100], counts: [i % 5, 3, 1] },
      confidence: 0.6 + (i % 4) / 10,
    })).join("\n") + "\n";
  const posted = await fetch(`${api}/v1/telemetry`, {
    method: "POST",
    headers: { "content-type": "application/x-ndjson", ...auth },
    body: ndjson,
  });
  console.log(`posted ${records} records (${posted.status})`);
  if (!events.ok || !(events.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    console.log(`events not available: the bridge answered ${events.status} (no event stream): the swap would have to be polled`);
    return;
  }
  let type = "";
  for await (const line of lines(events.body!).tail()) {
    if (line.startsWith("event: ")) type = line.slice(7);
    if (line.startsWith("data: ") && type === "model.activated") {
      const change = JSON.parse(line.slice(6)) as { id: number; data: { model_id: string; previous?: string; shard?: unknown } };
      const shard = change.data.shard === undefined ? "" : `, sealed shard ${JSON.stringify(change.data.shard)}`;
      console.log(`swap: now serving ${change.data.model_id} (was ${change.data.previous ?? "?"}; event ${change.id}${shard})`);
      return;
    }
  }
}

/** Lines of a byte stream, as they come; `tail()` iterates them. */
function lines(stream: ReadableStream<Uint8Array>) {
  const seen: string[] = [];
  const waker: { wake: () => void } = { wake: () => {} };
  let done = false;
  void (async () => {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      const parts = buf.split("\n");
      buf = parts.pop()!;
      seen.push(...parts);
      waker.wake();
    }
    done = true;
    waker.wake();
  })().catch(() => {
    done = true;
    waker.wake();
  });
  return {
    seen,
    async *tail(): AsyncGenerator<string> {
      for (let i = 0;;) {
        while (i < seen.length) yield seen[i++]!;
        if (done) return;
        await new Promise<void>((r) => (waker.wake = r));
      }
    },
  };
}

async function waitFor(out: ReturnType<typeof lines>, re: RegExp, ms: number): Promise<RegExpExecArray> {
  let m: RegExpExecArray | null = null;
  await until(() => (m = out.seen.map((l) => re.exec(l)).find((x) => x !== null) ?? null) !== null, ms, String(re));
  return m!;
}

async function until(ok: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await ok())) {
    if (performance.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Complete NDJSON records in `text`. */
function count(text: string): number {
  return text.split("\n").length - 1;
}

/** Runs the bridge's command line; resolves with its stdout, rejects with its stderr. */
async function cli(args: string[]): Promise<string> {
  const p = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`gpu-bridge-host ${args.slice(0, 2).join(" ")} exited ${code}: ${err.trim()}`);
  return out + err;
}

/** `/gpu/models/active` as the VM holds it, read as a Queen session would. */
async function catActive(port: number): Promise<string> {
  const session = await openSession(bunRuntime().connect, { host: "127.0.0.1", port, token: TOKEN, ticket: "" }, {
    ackTimeoutMs: 2000,
    window: 1,
  });
  try {
    await sendAll(session, [{ line: `AUTH ${TOKEN}`, verb: "AUTH" }, { line: "ATTACH queen ", verb: "ATTACH" }]);
    return (await session.requestLines("CAT /gpu/models/active", "CAT")).join("\n").trim();
  } finally {
    session.close();
  }
}

/**
 * A safetensors file of random LoRA weights: the format's 8-byte little-endian header length,
 * its JSON header (dtype, shape, offsets per tensor) and the raw f32 data. Random: a stand-in.
 */
function standInSafetensors(rank: number, width: number): Uint8Array {
  const names = ["q_proj.lora_A", "q_proj.lora_B", "v_proj.lora_A", "v_proj.lora_B"];
  const header: Record<string, unknown> = { __metadata__: { stand_in: "random weights" } };
  let offset = 0;
  for (const [i, name] of names.entries()) {
    const shape = i % 2 === 0 ? [rank, width] : [width, rank];
    const bytes = rank * width * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const data = new Float32Array(offset / 4).map(() => (Math.random() - 0.5) * 0.02);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  out.set(new Uint8Array(data.buffer), 8 + json.length);
  return out;
}
