/**
 * `serve --tokens FILE` on a real socket: SIGHUP loads the edited file while an event stream
 * stays open (and goes on receiving), and a bad edit keeps the old principals, loudly.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { addPrincipal } from "../../src/api/tokens-file.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";

const tmp = tempDir("gbh-tokens-reload-");
const file = join(tmp.path, "tokens.toml");
let daemon: Bridge;
let api: { port: number; close(): Promise<void> };
let lines: string[];
let reader: string;

beforeAll(async () => {
  reader = addPrincipal(file, "watcher", "reader", []).token;
  const c = parseCommand(
    ["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--listen", "127.0.0.1:0", "--tokens", file],
    {},
  );
  if (c.kind !== "serve") throw new Error("expected serve");
  const logger = memoryLogger();
  lines = logger.lines;
  daemon = await createBridge(c.options, { runtime: bunRuntime(), log: logger.log, backend: mockBackend() });
  api = await startApi(c.options, daemon, { runtime: bunRuntime(), log: logger.log });
});
afterAll(async () => {
  await api.close();
  await daemon.stop();
  tmp.cleanup();
});

const url = (path: string) => `http://127.0.0.1:${api.port}${path}`;
const as = (token: string) => ({ Authorization: `Bearer ${token}` });
const meStatus = async (token: string) => (await fetch(url("/v1/principals/me"), { headers: as(token) })).status;

describe("tokens file reload", () => {
  test("tokens add writes mode 0600 and only the token's hash", () => {
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).not.toContain(reader);
  });

  test("SIGHUP loads a principal added to the file; an open event stream stays open and keeps receiving", async () => {
    const stream = await fetch(url("/v1/events"), { headers: as(reader) });
    expect(stream.status).toBe(200);
    const body = stream.body!.getReader();
    let seen = "";
    const readUntil = async (text: string) => {
      const decoder = new TextDecoder();
      while (!seen.includes(text)) {
        const { value, done } = await body.read();
        if (done) throw new Error(`the stream ended before ${text}`);
        seen += decoder.decode(value);
      }
    };
    await readUntil("newest change");

    const added = addPrincipal(file, "team-b", "operator", ["b-*"]).token;
    expect(await meStatus(added)).toBe(401);
    process.kill(process.pid, "SIGHUP");
    await until(() => lines.some((l) => l.includes("reloaded") && l.includes("added team-b")), 5000, "the reload");
    expect(await meStatus(added)).toBe(200);
    expect(await meStatus(reader)).toBe(200);

    const granted = await fetch(url("/v1/leases"), {
      method: "POST",
      headers: { ...as(added), "content-type": "application/json" },
      body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "b-1", mem_mb: 16, streams: 1, ttl_s: 60, priority: 1 }),
    });
    expect(granted.status).toBe(201);
    // The stream opened before the reload gets both the reload and the grant, naming who asked.
    await readUntil("lease.granted");
    expect(seen).toContain("event: tokens.reloaded");
    const grant = seen.split("\n").find((l) => l.startsWith("data: ") && l.includes('"lease.granted"'))!;
    expect(JSON.parse(grant.slice(6)).actor).toEqual({ route: "POST /v1/leases", principal: "team-b", request_id: expect.any(String) });
    await body.cancel();
  });

  test("a bad file on SIGHUP keeps the principals loaded before, logs an error and records the refusal", async () => {
    writeFileSync(file, '[principals.broken]\nrole = "superuser"\n');
    chmodSync(file, 0o600);
    process.kill(process.pid, "SIGHUP");
    await until(() => lines.some((l) => l.includes("NOT reloaded")), 5000, "the refused reload");
    const line = lines.find((l) => l.includes("NOT reloaded"))!;
    expect(line).toContain("principals.broken.role: role must be one of reader, operator, admin");
    expect(await meStatus(reader)).toBe(200);
    const refused = daemon.changes.since(0).changes.filter((c) => c.type === "tokens.reloaded" && c.outcome === "refused");
    expect(refused.length).toBe(1);
    expect(refused[0]!.severity).toBe("warning");
    expect(refused[0]!.data.principals).toBe(2);
  });
});
