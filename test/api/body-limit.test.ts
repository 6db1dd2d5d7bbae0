/**
 * One request-body limit (BODY_LIMIT, src/config/limits.ts) for the JSON routes and telemetry
 * ingest alike: exactly the limit is read, one byte more is a 413 that names the limit.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { BODY_LIMIT } from "../../src/config/limits.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-body-")));
afterEach(() => dir.cleanup());

test("POST /v1/leases and POST /v1/telemetry read BODY_LIMIT bytes and refuse one more with 413", async () => {
  const c = parseCommand(["serve", "--mock", "--no-api", "--state-dir", join(dir.path, "state")], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  const bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() }, {
    noJournal: true,
    clock: new FakeClock(),
  });
  const app = createApp({ token: "t", log, bridge });
  const post = (path: string, size: number) =>
    app.request(path, {
      method: "POST",
      headers: { Authorization: "Bearer t", "content-type": "application/json" },
      body: " ".repeat(size), // whitespace: not JSON, so a body that is read is a 400, never a 202
    });
  try {
    for (const path of ["/v1/leases", "/v1/telemetry"]) {
      expect({ path, status: (await post(path, BODY_LIMIT)).status }).not.toEqual({ path, status: 413 });
      const over = await post(path, BODY_LIMIT + 1);
      expect({ path, status: over.status }).toEqual({ path, status: 413 });
      expect(((await over.json()) as { error: { message: string } }).error.message).toBe(
        `Request body of ${BODY_LIMIT + 1} bytes is over the ${BODY_LIMIT}-byte limit`,
      );
    }
  } finally {
    await bridge.stop();
  }
});
