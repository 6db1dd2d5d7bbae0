/**
 * `telemetry push` and `telemetry export` find `make run`'s state: with no --state-dir and
 * nothing in the default folder, `.state` in the working folder is read, and they say so.
 */
import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, tempFolder } from "../helpers.ts";
import { record } from "./helpers.ts";

function cli(cwd: string, home: string, args: string[]) {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: home };
  const r = Bun.spawnSync([process.execPath, join(REPO, "src", "main.ts"), "telemetry", ...args], { cwd, env, stderr: "pipe" });
  return { code: r.exitCode, err: r.stderr.toString() };
}

test("with no --state-dir, push takes make run's .state/api-token and export its spool, saying so", () => {
  const checkout = tempFolder("gbh-checkout-");
  const home = tempFolder("gbh-home-");
  mkdirSync(join(checkout, ".state", "telemetry"), { recursive: true });
  writeFileSync(join(checkout, ".state", "api-token"), "m".repeat(43) + "\n");
  writeFileSync(join(checkout, "records.ndjson"), JSON.stringify(record(1)) + "\n");

  // Nothing listens on port 1: the token was found, the push got as far as the bridge.
  const push = cli(checkout, home, ["push", "records.ndjson", "--url", "http://127.0.0.1:1"]);
  expect(push.err).toContain(`using make run's API token .state/api-token (${home}/.local/state/gpu-bridge-host/api-token is missing`);
  expect(push.err).toContain("Cannot reach the bridge at http://127.0.0.1:1");
  expect(push.code).toBe(1);

  const exp = cli(checkout, home, ["export", "--out", "bundle.cbor"]);
  expect(exp.err).toContain("reading make run's spool in .state");
  expect(exp.err).toContain("exported 0 records from .state/telemetry to bundle.cbor");
  expect(exp.code).toBe(0);
});

test("without make run's .state, the default folder is named in the error", () => {
  const elsewhere = tempFolder("gbh-elsewhere-");
  const home = tempFolder("gbh-home-");
  writeFileSync(join(elsewhere, "records.ndjson"), JSON.stringify(record(1)) + "\n");
  const push = cli(elsewhere, home, ["push", "records.ndjson"]);
  expect(push.code).toBe(1);
  expect(push.err).toContain(`${home}/.local/state/gpu-bridge-host/api-token is missing`);
  const exp = cli(elsewhere, home, ["export", "--out", "bundle.cbor"]);
  expect(exp.code).toBe(1);
  expect(exp.err).toContain(`Cannot export: ${home}/.local/state/gpu-bridge-host holds no telemetry spool`);
});
