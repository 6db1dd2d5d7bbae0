/**
 * `make run` (scripts/run.sh): refuses ports that are taken, naming the port and the variable
 * that moves it, says so when the bridge dies before it listens, and serves the example
 * registry from a copy in the state folder.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, tempFolder } from "../helpers.ts";

const RUN = join(REPO, "scripts", "run.sh");

/** A port nothing listens on (the kernel's pick, released at once). */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function listener(): { port: number; stop: () => void } {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  return { port: s.port, stop: () => s.stop(true) };
}

function run(env: Record<string, string>, args: string[] = []) {
  const r = Bun.spawnSync([RUN, ...args], {
    env: { ...process.env, STATE_DIR: tempFolder("run-state-"), ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

test("a taken console port is refused before anything starts, naming the port and PORT", () => {
  const other = listener();
  try {
    const r = run({ PORT: String(other.port), API_PORT: String(freePort()) });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`make run: port ${other.port} (the mock console) is taken on 127.0.0.1`);
    expect(r.err).toContain(`make run PORT=${other.port + 100}`);
    expect(r.out).not.toContain("The bridge is up");
  } finally {
    other.stop();
  }
});

test("a taken API port is refused, naming the port and API_PORT", () => {
  const other = listener();
  try {
    const r = run({ PORT: String(freePort()), API_PORT: String(other.port) });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`make run: port ${other.port} (the bridge's API) is taken on 127.0.0.1`);
    expect(r.err).toContain(`make run API_PORT=${other.port + 100}`);
    expect(r.out).not.toContain("The bridge is up");
  } finally {
    other.stop();
  }
});

test("a bad port value and a bridge that exits before listening fail with a message, never 'The bridge is up'", () => {
  const bad = run({ PORT: "31x37" });
  expect(bad.code).toBe(1);
  expect(bad.err).toContain("PORT must be a TCP port from 1 to 65535, got '31x37'");
  const api = freePort();
  const dead = run({ PORT: String(freePort()), API_PORT: String(api) }, ["--no-such-flag"]);
  expect(dead.code).toBe(1);
  expect(dead.err).toContain("Unknown option --no-such-flag");
  expect(dead.err).toContain(`make run: the bridge exited (status 2) before listening on port ${api}`);
  expect(dead.out).not.toContain("The bridge is up");
}, 30_000);

test("the bridge serves the example registry from a copy, so switching models leaves the checkout alone", async () => {
  const state = tempFolder("run-state-");
  const api = freePort();
  const proc = Bun.spawn([RUN], {
    env: { ...process.env, PORT: String(freePort()), API_PORT: String(api), STATE_DIR: state },
    stdout: "pipe",
    stderr: "ignore",
  });
  try {
    const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
    let out = "";
    while (!out.includes("The bridge is up")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`make run ended before it was up:\n${out}`);
      out += new TextDecoder().decode(value);
    }
    const before = readFileSync(join(REPO, "mock", "registry", "active"), "utf8");
    const models = await (await fetch(`http://127.0.0.1:${api}/v1/models`)).json() as { source: string; available: { model_id: string }[] };
    expect(models.source).toBe("registry");
    expect(models.available.map((m) => m.model_id)).toEqual(["demo-base-v1", "demo-lora-v1"]);
    const put = await fetch(`http://127.0.0.1:${api}/v1/models/active`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${readFileSync(join(state, "api-token"), "utf8").trim()}`, "content-type": "application/json" },
      body: JSON.stringify({ model_id: "demo-lora-v1" }),
    });
    expect(await put.json()).toEqual({ active: "demo-lora-v1" });
    expect(readFileSync(join(state, "registry", "active"), "utf8")).toBe("demo-lora-v1\n");
    expect(readFileSync(join(REPO, "mock", "registry", "active"), "utf8")).toBe(before);

    // The README's API walkthrough, pasted twice in a row: each run gets its result and releases.
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const block = /<!-- walkthrough:api[^>]*-->\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    for (const run of [1, 2]) {
      const walk = Bun.spawn(["bash", "-c", block!], {
        cwd: REPO,
        env: { ...process.env, API_PORT: String(api), STATE_DIR: state },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [text, err, code] = await Promise.all([new Response(walk.stdout).text(), new Response(walk.stderr).text(), walk.exited]);
      expect({ run, err, code }).toEqual({ run, err: "", code: 0 });
      expect(text.match(/^\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$/m)?.slice(1).map(Number)).toEqual([11, 22, 33, 44]);
      expect(text).toContain('"state":"RELEASED"');
    }
  } finally {
    proc.kill("SIGINT");
    await proc.exited;
  }
}, 30_000);
