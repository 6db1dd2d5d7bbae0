/**
 * `models watch --exec CMD`: tells an inference process beside the bridge of every activation,
 * without polling. It follows `GET /v1/events?types=model.activated` and runs CMD once per
 * activation, one at a time, with the model in its environment:
 *   GPU_BRIDGE_MODEL_ID     the model now active
 *   GPU_BRIDGE_MODEL_PATH   its folder in the registry
 *   GPU_BRIDGE_MODEL_SHARD  the sealed shard's handle as JSON (shard_id, digest, lease_id,
 *                           gpu_id, vram_bytes), or empty when the activation sealed nothing
 * A dropped connection (the bridge restarting, most often) is retried with backoff and resumed
 * with `Last-Event-ID`, so no activation between is missed; when the bridge says it cannot resume
 * (`stream.gap`: the changes were evicted, or the bridge restarted and numbers afresh), the
 * current model is read from `GET /v1/models` and CMD runs for it unless it is the model CMD last
 * ran for. A CMD that fails is reported and the watch goes on.
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { SseParser } from "../util/sse-parse.ts";
import { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF } from "../util/backoff.ts";
import { type Clock, delay, systemClock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";

/** What CMD is told of one activation. */
export interface ActivationSeen {
  readonly model_id: string;
  readonly path: string;
  /** The shard handle, or null. */
  readonly shard: unknown;
}

/** Runs CMD with `env` added to the environment; resolves with its exit status (or the signal's name). */
export type RunCommand = (command: string, env: Readonly<Record<string, string>>) => Promise<number | string>;

export interface ExecWatchOptions {
  /** The bridge's API, e.g. http://127.0.0.1:31338. */
  readonly url: string;
  readonly command: string;
  /** Sent as a bearer token when given (for a bridge whose reads need one). */
  readonly token?: string;
  readonly run: RunCommand;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly clock?: Clock;
  readonly backoff?: BackoffPolicy;
  readonly fetch?: typeof fetch;
  /** Told after each CMD run (tests wait on it). */
  readonly onRun?: (seen: ActivationSeen, status: number | string) => void;
}

/** CMD through `/bin/sh -c`, its output on ours, `env` added to the process's environment. */
export const shellRunner: RunCommand = (command, env) =>
  new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", command], { env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "killed"));
  });

/** The environment CMD gets for `seen`. */
export function activationEnv(seen: ActivationSeen): Record<string, string> {
  return {
    GPU_BRIDGE_MODEL_ID: seen.model_id,
    GPU_BRIDGE_MODEL_PATH: seen.path,
    GPU_BRIDGE_MODEL_SHARD: seen.shard === null || seen.shard === undefined ? "" : JSON.stringify(seen.shard),
  };
}

/** Watches until `signal` aborts; never throws for a bridge that is away or a CMD that fails. */
export async function watchActivations(o: ExecWatchOptions): Promise<void> {
  const clock = o.clock ?? systemClock;
  const get = o.fetch ?? fetch;
  const base = o.url.replace(/\/+$/, "");
  const auth: Record<string, string> = o.token === undefined ? {} : { authorization: `Bearer ${o.token}` };
  let lastId: string | null = null;
  let lastModel: string | null = null;
  let attempt = 0;

  const act = async (seen: ActivationSeen) => {
    o.log.info(`running ${o.command} for ${seen.model_id}`);
    let status: number | string;
    try {
      status = await o.run(o.command, activationEnv(seen));
    } catch (error) {
      status = errorText(error);
    }
    lastModel = seen.model_id;
    if (status !== 0) {
      o.log.warn(
        `${o.command} failed for ${seen.model_id} (${typeof status === "number" ? `exit status ${status}` : status}); still watching`,
      );
    }
    o.onRun?.(seen, status);
  };

  /** After a gap: the model active now, acted on unless CMD last ran for it. */
  const catchUp = async () => {
    const res = await get(`${base}/v1/models`, { headers: auth, signal: o.signal });
    if (!res.ok) throw new Error(`GET /v1/models answered ${res.status}`);
    const models = (await res.json()) as { active?: unknown; registry?: unknown };
    if (typeof models.active !== "string") throw new Error("GET /v1/models named no active model");
    if (models.active === lastModel) return;
    const path = typeof models.registry === "string" ? `${models.registry}/available/${models.active}` : "";
    await act({ model_id: models.active, path, shard: null });
  };

  while (!o.signal.aborted) {
    try {
      const res: Response = await get(`${base}/v1/events?types=model.activated`, {
        headers: { accept: "text/event-stream", ...auth, ...(lastId !== null && { "last-event-id": lastId }) },
        signal: o.signal,
      });
      if (!res.ok || res.body === null) throw new Error(`GET /v1/events answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      o.log.info(`following ${base}/v1/events${lastId !== null ? ` from change ${lastId}` : ""}`);
      attempt = 0;
      const parser: SseParser = new SseParser(lastId);
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        for (const ev of parser.push(chunk)) {
          if (ev.event === "model.activated") {
            const change = JSON.parse(ev.data) as { data?: { model_id?: unknown; path?: unknown; shard?: unknown } };
            const d = change.data ?? {};
            if (typeof d.model_id === "string") {
              await act({ model_id: d.model_id, path: typeof d.path === "string" ? d.path : "", shard: d.shard ?? null });
            }
          } else if (ev.event === "stream.gap") {
            o.log.warn(`the bridge cannot replay every change since ${lastId ?? "the start"} (${ev.data}); reading the active model`);
            await catchUp();
          } else if (ev.event === "stream.dropped") {
            o.log.warn(`the bridge dropped this watch (${ev.data}); resuming`);
          }
          lastId = ev.lastEventId;
        }
      }
      if (!o.signal.aborted) o.log.warn("the event stream ended; reconnecting");
    } catch (error) {
      if (o.signal.aborted) break;
      o.log.warn(`cannot follow ${base}/v1/events: ${errorText(error)}; retrying`);
    }
    await delay(backoffDelay(attempt++, o.backoff ?? DEFAULT_BACKOFF), o.signal, clock).catch(() => {});
  }
}
