/** `peft export` (src/console/peft-export.ts) against the mock Queen, over the console protocol. */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { ConsoleConnection, type ConsoleState } from "../../mock/console/core.ts";
import { memoryMockConsole } from "../../mock/console/server.ts";
import { peftExport, PeftExportError } from "../../src/console/peft-export.ts";
import { chunkRecord, envelope } from "../../src/telemetry/forward.ts";
import { encodeRecord } from "../../src/telemetry/record.ts";
import { decodeCbor } from "../../src/util/cbor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { tempFolder } from "../helpers.ts";
import { accepted } from "../telemetry/helpers.ts";
import { run } from "../../src/commands/peft-export.ts";
import { memoryLogger, memoryStdio } from "../helpers.ts";
import type { CommandIo } from "../../src/commands/types.ts";

/** A mock console whose Queen exported `jobs` jobs of 4 records each. */
function exported(jobs: number) {
  const mock = memoryMockConsole({ token: "t" });
  mock.state.export.policy = { minRecords: 4, windowMs: 60_000 };
  const c = new ConsoleConnection(mock.state);
  c.handle("AUTH t");
  c.handle("ATTACH queen ");
  for (let j = 0; j < jobs; j++) {
    c.handle('ECHO /queen/telemetry/edge-7/ctl {"new":"segment","mime":"application/x-ndjson"}');
    const seg = c.handle("CAT /queen/telemetry/edge-7/latest").lines[1]!;
    const text = Array.from({ length: 4 }, (_, i) => encodeRecord(accepted(j * 4 + i)) + "\n").join("");
    chunkRecord(text, 1).forEach((chunk, i) => c.handle(`ECHO /queen/telemetry/edge-7/seg/${seg} ${envelope(1 + i, chunk)}`));
  }
  expect(mock.state.export.jobs.size).toBe(jobs);
  return mock;
}

const target = (out: string, extra: object = {}) => ({ host: "q", port: 1, token: "t", ticket: "", ackTimeoutMs: 2000, out, ...extra });

describe("peft export", () => {
  test("pulls the newest job's three files byte for byte into OUT/<job>/, and checks them", async () => {
    const mock = exported(2);
    const out = tempFolder("gbh-peft-");
    const r = await peftExport(mock.connect, target(out));
    expect(r).toMatchObject({ job: "job_0002", baseModel: "m", frames: 4, dir: join(out, "job_0002") });
    for (const [name, bytes] of mock.state.export.jobs.get("job_0002")!.files) {
      expect(sha256Hex(readFileSync(join(out, "job_0002", name)))).toBe(sha256Hex(bytes));
    }
    const frames = decodeCbor(readFileSync(join(out, "job_0002", "telemetry.cbor"))) as { payload: { token_count: number } }[];
    expect(frames.map((f) => f.payload.token_count)).toEqual([104, 105, 106, 107]);
    const policy = parseToml(readFileSync(join(out, "job_0002", "policy.toml"), "utf8")) as { telemetry: { sha256: string } };
    expect(policy.telemetry.sha256).toBe(sha256Hex(readFileSync(join(out, "job_0002", "telemetry.cbor"))));
    // What it sent: LS, LS, then one CAT per file, as coh peft export does.
    expect(mock.state.linesReceived.filter((l) => /^(LS|CAT) \/queen\/export/.test(l))).toEqual([
      "LS /queen/export/lora_jobs",
      "LS /queen/export/lora_jobs/job_0002",
      "CAT /queen/export/lora_jobs/job_0002/telemetry.cbor",
      "CAT /queen/export/lora_jobs/job_0002/base_model.ref",
      "CAT /queen/export/lora_jobs/job_0002/policy.toml",
    ]);
  });

  test("--job picks one; a missing job, or no job yet, is an error that says so", async () => {
    const mock = exported(2);
    const out = tempFolder("gbh-peft-");
    expect((await peftExport(mock.connect, target(out, { job: "job_0001" }))).frames).toBe(4);
    expect(existsSync(join(out, "job_0002"))).toBe(false);
    await expect(peftExport(mock.connect, target(out, { job: "job_0009" }))).rejects.toThrow(
      "Export job job_0009 not found under /queen/export/lora_jobs (jobs: job_0001, job_0002)",
    );
    await expect(peftExport(exported(0).connect, target(out))).rejects.toThrow(/No export job under \/queen\/export\/lora_jobs yet/);
  });

  test("refuses to overwrite an earlier export without --force, and replaces it with", async () => {
    const mock = exported(1);
    const out = tempFolder("gbh-peft-");
    await peftExport(mock.connect, target(out));
    writeFileSync(join(out, "job_0001", "policy.toml"), "edited by hand\n");
    await expect(peftExport(mock.connect, target(out))).rejects.toThrow(
      `Cannot write ${join(out, "job_0001")}: telemetry.cbor, base_model.ref, policy.toml already there (--force replaces them)`,
    );
    expect(readFileSync(join(out, "job_0001", "policy.toml"), "utf8")).toBe("edited by hand\n");
    await peftExport(mock.connect, target(out, { force: true }));
    expect(readFileSync(join(out, "job_0001", "policy.toml"), "utf8")).toContain('id = "job_0001"');
  });

  test("a bundle that does not hold together is refused, naming the file and what is wrong", async () => {
    const tamper = (state: ConsoleState, name: string, text: string | Uint8Array) => {
      const job = state.export.jobs.get("job_0001")!;
      (job.files as Map<string, Uint8Array>).set(name, typeof text === "string" ? new TextEncoder().encode(text) : text);
    };
    const out = tempFolder("gbh-peft-");
    let mock = exported(1);
    tamper(mock.state, "telemetry.cbor", new Uint8Array([0x83, 1, 2]));
    await expect(peftExport(mock.connect, target(out))).rejects.toThrow(/telemetry\.cbor/);
    mock = exported(1);
    const original = mock.state.export.jobs.get("job_0001")!.files.get("telemetry.cbor")!;
    tamper(mock.state, "telemetry.cbor", original.slice(0, -1));
    await expect(peftExport(mock.connect, target(out))).rejects.toBeInstanceOf(PeftExportError);
    mock = exported(1);
    tamper(mock.state, "base_model.ref", "bad id with spaces\n");
    await expect(peftExport(mock.connect, target(out))).rejects.toThrow(/^base_model\.ref: /);
    mock = exported(1);
    tamper(mock.state, "base_model.ref", "other-base\n");
    await expect(peftExport(mock.connect, target(out))).rejects.toThrow("policy.toml names base model m, base_model.ref other-base");
    mock = exported(1);
    tamper(mock.state, "policy.toml", "[policy\n");
    await expect(peftExport(mock.connect, target(out))).rejects.toThrow(/^policy\.toml is not valid TOML/);
    expect(existsSync(join(out, "job_0001"))).toBe(false);
  });

  test("the command prints what it wrote", async () => {
    const mock = exported(1);
    const out = tempFolder("gbh-peft-");
    const io = memoryStdio();
    const request = { ...target(out), job: undefined, force: false };
    const cio = { ...io.io, logger: () => memoryLogger().log } as unknown as CommandIo;
    expect(await run({ kind: "peft-export", request }, cio, mock.connect)).toBe(0);
    expect(io.out.join("")).toMatch(
      new RegExp(`^exported job_0001 \\(4 telemetry frames, base model m\\) to ${join(out, "job_0001")}: telemetry\\.cbor \\d+ bytes`),
    );
  });
});
