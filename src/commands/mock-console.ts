/** `gpu-bridge-host mock-console`: runs the mock console until SIGINT or SIGTERM. */
import { stopSignal } from "../util/signals.ts";
import { STATUS } from "../../mock/console/core.ts";
import { startMockConsole } from "../../mock/console/server.ts";
import { QUEEN } from "../contract/queen.ts";
import type { Command } from "../cli/options.ts";
import { detectRuntime } from "../runtime/mod.ts";
import type { CommandIo } from "./types.ts";

/** Serves until a signal arrives; resolves with the exit status. */
export async function run(command: Extract<Command, { kind: "mock-console" }>, io: CommandIo): Promise<number> {
  const options = command.options;
  const log = io.logger(options.logLevel, "mock-console", [options.authToken]);
  const runtime = await detectRuntime();
  const mock = await startMockConsole(runtime, { host: options.host, port: options.port, token: options.authToken });
  mock.state.faults.ackDelayMs = options.ackDelayMs;
  mock.state.faults.latencyMs = options.rttMs / 2;
  mock.state.faults.jitterMs = options.jitterMs;
  mock.state.faults.noise = options.noise;
  mock.state.faults.noReadback = options.noReadback;
  mock.state.export.policy = { minRecords: options.exportMinRecords, windowMs: options.exportWindowS * 1000 };
  mock.state.export.onExport = (job) =>
    log.info(
      `queen exported ${job.id}: ${job.records} records of ${job.baseModel} from ${job.devices.join(", ")}; ` +
        `${QUEEN.exportRoot}/${job.id}/`,
    );
  mock.state.on((e) => {
    if (e.type === "published") {
      log.info(
        `snapshot landed: ${e.tree.nodes.length} GPUs, ${e.tree.models.length} models, active ${e.tree.active}; ` +
          `${STATUS}: ${mock.state.read(STATUS)}`,
      );
    } else if (e.type === "refused") {
      log.warn(`refused ${JSON.stringify(e.line.slice(0, 40))}; ${STATUS}: ${mock.state.read(STATUS)}`);
    } else if (e.type === "auth" && !e.ok) log.warn(`connection ${e.conn}: AUTH with a wrong token`);
    else if (e.type === "dropped") log.warn(`connection ${e.conn}: inbound queue full, dropped the oldest line`);
    else if (e.type === "vm") {
      const v = e.event;
      if (v.type === "spawned") log.info(`queen spawned ${v.worker.id} on ${v.worker.gpuId}; the VM appended its lease: ${v.lease}`);
      else if (v.type === "killed") log.info(`queen killed ${v.worker}`);
      else log.info(`${v.path} += ${v.line}`);
    } else log.debug(`connection ${e.conn}: ${e.type}`);
  });
  log.info(`listening on ${options.host}:${mock.port}`);
  await stopSignal();
  await mock.close();
  log.info("stopped");
  return 0;
}
