/** `--publish` without `--interval-ms`: one publish, then exit. */
import type { BridgeOptions } from "../cli/options.ts";
import { publishOnce } from "../console/publish.ts";
import type { Logger } from "../util/log.ts";
import type { Namespace } from "../contract/namespace.ts";
import { detectRuntime } from "../runtime/mod.ts";
import { makeSnapshot, publishLines } from "../contract/snapshot.ts";

/** Publishes `ns` once; resolves with the exit status (errors propagate to the caller). */
export async function publishCommand(options: BridgeOptions, ns: Namespace, log: Logger): Promise<number> {
  const runtime = await detectRuntime();
  const snapshot = makeSnapshot(ns);
  const lines = publishLines(snapshot);
  const target = { host: options.tcpHost, port: options.tcpPort, token: options.authToken, ticket: options.ticket };
  const console = log.child("console");
  const report = await publishOnce(runtime.connect, target, snapshot, lines, {
    ackTimeoutMs: options.ackTimeoutMs,
    window: options.window,
    onOther: (line) => console.debug(`<- ${line}`),
  });
  log.info(
    `published ${report.bytes} bytes sha256=${report.sha256.slice(0, 12)} in ${report.frames} frames, ` +
      `${report.durationMs.toFixed(1)} ms`,
  );
  return 0;
}
