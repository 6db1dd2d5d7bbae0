/** `telemetry push` and `telemetry export` name the file or folder that is wrong, and the flag. */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportTelemetry, pushTelemetry } from "../../src/telemetry/cli.ts";
import { memoryLogger, tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-tcli-")));
afterEach(() => dir.cleanup());

test("push: a missing file, or a folder, is named with what is wrong, not a raw ENOENT", async () => {
  const missing = join(dir.path, "nope.ndjson");
  const push = (file: string) => pushTelemetry({ file, url: "http://127.0.0.1:1", token: "t".repeat(20) }, memoryLogger().log);
  await expect(push(missing)).rejects.toThrow(
    `Cannot read the telemetry file ${JSON.stringify(missing)} (telemetry push FILE): no such file`,
  );
  await expect(push(dir.path)).rejects.toThrow("it is a folder, not a file of NDJSON records");
});

test('export: a --state-dir without a spool is an error naming the flag, not "exported 0 records"', () => {
  const out = join(dir.path, "out.cbor");
  expect(() => exportTelemetry({ stateDir: join(dir.path, "elsewhere"), out }, memoryLogger().log)).toThrow(
    `Cannot export: ${join(dir.path, "elsewhere")} holds no telemetry spool (${
      join(dir.path, "elsewhere", "telemetry")
    } does not exist); ` +
      "pass --state-dir with the bridge's state folder (make run's is .state",
  );
  mkdirSync(join(dir.path, "state", "telemetry"), { recursive: true });
  // An empty spool (every record forwarded) is fine, and the log names the folder it read.
  const { log, lines } = memoryLogger();
  expect(exportTelemetry({ stateDir: join(dir.path, "state"), out }, log)).toBe(0);
  expect(lines.join("\n")).toContain(`exported 0 records from ${join(dir.path, "state", "telemetry")} to ${out}`);
});

test("export: a file where the spool's folder should be is a --state-dir problem, not a raw ENOTDIR", () => {
  const state = join(dir.path, "state");
  mkdirSync(state);
  writeFileSync(join(state, "telemetry"), "not a folder");
  expect(() => exportTelemetry({ stateDir: state, out: join(dir.path, "out.cbor") }, memoryLogger().log)).toThrow(
    `Cannot use the state folder (--state-dir ${JSON.stringify(state)}): ${join(state, "telemetry")} is a file where a folder is needed`,
  );
});
