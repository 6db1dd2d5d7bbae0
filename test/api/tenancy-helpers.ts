/** What the tenancy tests share: an app over a HostState without a socket, and a job descriptor. */
import { createHash } from "node:crypto";
import { createApp } from "../../src/api/app.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import type { EventHub } from "../../src/changes/stream.ts";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import type { Runner } from "../../src/job/runner.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { memoryLogger } from "../helpers.ts";

/** A runner whose jobs never finish. */
export const NEVER: Runner = { run: () => new Promise(() => {}) };

/**
 * The API over a HostState on the mock GPUs (`host.close()` when done), with `runner` running
 * the jobs and the app's other dependencies from `deps`.
 */
export function hostApp(
  deps: Omit<Parameters<typeof createApp>[0], "bridge" | "log"> & { readonly runner?: Runner; readonly events?: EventHub },
): { app: ReturnType<typeof createApp>; host: HostState } {
  const { runner = NEVER, events, ...rest } = deps;
  const { log } = memoryLogger();
  const host = new HostState({ gpus: () => MOCK_GPUS, runner, runnerKind: "cpu", log, onChange: () => {} });
  const app = createApp({
    log,
    ...rest,
    bridge: bridgeFacade({
      version: "9.9.9",
      hostname: "edge-01",
      gpus: () => MOCK_GPUS,
      stats: () => Promise.resolve(mockStats()),
      host,
      models: { catalog: builtinCatalog },
      ...(events !== undefined && { events }),
    }),
  });
  return { app, host };
}

const OPERANDS = new Uint8Array(new Float32Array([1, 2, 10, 20]).buffer);
/** A vadd job named `id` with its operands inline, as JSON. */
export const vaddJob = (id: string): string =>
  JSON.stringify({
    job: id,
    kernel: "vadd",
    grid: [1, 1, 1],
    block: [32, 1, 1],
    bytes_hash: `sha256:${createHash("sha256").update(OPERANDS).digest("hex")}`,
    inputs: [],
    outputs: [],
    timeout_ms: 20000,
    payload_b64: Buffer.from(OPERANDS).toString("base64"),
  });
