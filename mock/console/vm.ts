/**
 * The VM side of `/gpu` as the real Cohesix VM keeps it (docs/protocol.md#12-what-the-vm-writes-back): node files the
 * VM's own clients append to (caps, the JSON-object rule, a refusal changes nothing), the
 * Queen's `/queen/ctl` spawning and killing GPU workers (a spawn appends the ACTIVE lease line
 * itself), `LS` with bare names, `CAT` acks carrying the last line, and snapshots replacing
 * every node's files whole. Pure: no sockets, no timers.
 */
import type { Namespace } from "../../src/contract/namespace.ts";
import { byteLength, truncateUtf8 } from "../../src/util/bytes.ts";
import { VM_CAPS } from "../../src/contract/limits.ts";

/** The longest ack line the VM sends for CAT (section 12: the summary is cut to fit). */
export const CAT_ACK_BYTES = 128;
export const QUEEN_CTL = "/queen/ctl";

export type NodeFile = "info" | "ctl" | "lease" | "status" | "job";
const NODE_FILES: readonly NodeFile[] = ["info", "ctl", "lease", "status"];
const NODE_PATH = /^\/gpu\/([^/]+)\/(info|ctl|lease|status|job)$/;

/** Roles a session may attach as; `worker-gpu` needs a ticket. */
export type Role = "queen" | "worker-gpu";

/** A GPU worker the Queen spawned. */
export interface VmWorker {
  readonly id: string;
  readonly gpuId: string;
}

/** Something the VM did on its own (for tests and the command's log). */
export type VmEvent =
  | { type: "appended"; path: string; line: string }
  | { type: "spawned"; worker: VmWorker; lease: string }
  | { type: "killed"; worker: string };

/** What a VM write answered: the ack line. */
export type VmReply = string;

/** The VM's `/gpu` tree (node files and the snapshot's models and telemetry) and its workers. */
export class VmTree {
  /** Every file under `/gpu`, path -> text (the snapshot's, then what the VM appended). */
  files = new Map<string, string>();
  /** GPU ids in snapshot order. */
  gpus: string[] = [];
  /** Whether a snapshot has brought models and telemetry. */
  landed = false;
  /** Whether this VM variant keeps an append-only `/gpu/<id>/job` file (reset at every snapshot). */
  jobFiles = false;
  readonly workers = new Map<string, VmWorker>();
  #nextWorker = 1;
  readonly queenCtl: string[] = [];
  onEvent: (e: VmEvent) => void = () => {};

  /**
   * A completed snapshot: `files` (the snapshot's, from treeFiles) replace the whole tree, so
   * every GPU node's `info`, `ctl`, `lease` and `status` is the snapshot's text and anything
   * appended since is gone; the job variant's files start empty again.
   */
  replace(ns: Namespace, files: Map<string, string>): void {
    this.files = files;
    this.gpus = ns.nodes.map((n) => n.id);
    if (this.jobFiles) { for (const id of this.gpus) files.set(`/gpu/${id}/job`, ""); }
    this.landed = true;
  }

  /** Whether `path` is one the VM tree answers for (node files and `/queen/ctl`). */
  handles(path: string): boolean {
    return path === QUEEN_CTL || (NODE_PATH.exec(path)?.[1] ?? "bridge") !== "bridge";
  }

  /** `ECHO <path> <payload>` from a session attached as `role`. */
  echo(path: string, payload: string, role: Role | null): VmReply {
    if (role === null) return `ERR ECHO reason=policy detail=not-attached path=${path}`;
    if (path === QUEEN_CTL) return role === "queen" ? this.#queen(payload) : `ERR ECHO reason=policy detail=queen-only path=${path}`;
    const m = NODE_PATH.exec(path)!;
    const file = m[2] as NodeFile;
    if (!this.files.has(path)) return `ERR ECHO reason=not-found path=${path}`;
    if (file === "info") return `ERR ECHO reason=permission detail=read-only path=${path}`;
    const refusal = this.append(path, payload);
    return refusal === null ? `OK ECHO path=${path} bytes=${byteLength(payload)}` : refusal;
  }

  /** Appends one line under the file's rules; null when done, else the refusal ack (nothing changed). */
  append(path: string, line: string): string | null {
    const m = NODE_PATH.exec(path);
    const text = this.files.get(path);
    if (m === null || text === undefined) return `ERR ECHO reason=not-found path=${path}`;
    const file = m[2] as Exclude<NodeFile, "info">;
    const invalid = (error: string) => `ERR ECHO reason=policy detail=invalid-payload path=${path} error=${error}`;
    if (file !== "ctl" && !(line.startsWith("{") && line.endsWith("}"))) return invalid("payload must be a JSON object");
    const cap = VM_CAPS[file];
    if (byteLength(text) + byteLength(line) + 1 > cap) return invalid(`${file} log full (${cap} bytes)`);
    this.files.set(path, text + line + "\n");
    this.onEvent({ type: "appended", path, line });
    return null;
  }

  /** `CAT <path>`: the ack with the last line as its summary, the lines, `END`. */
  cat(path: string, text: string | undefined): string[] {
    if (text === undefined) return [`ERR CAT reason=not-found path=${path}`];
    const body = text === "" ? [] : text.replace(/\n$/, "").split("\n");
    const head = `OK CAT path=${path} data=`;
    const summary = truncateUtf8(body.at(-1) ?? "", Math.max(0, CAT_ACK_BYTES - byteLength(head)));
    return [head + summary, ...body, "END"];
  }

  /** `LS <dir>`: bare names, `/gpu` in the VM's order; null for a missing directory. */
  ls(dir: string, otherPaths: Iterable<string>): string[] | null {
    if (dir === "/gpu") return ["bridge", ...(this.landed ? ["models", "telemetry"] : []), ...this.gpus];
    const node = /^\/gpu\/([^/]+)$/.exec(dir);
    if (node !== null && this.gpus.includes(node[1]!)) {
      return [...NODE_FILES, ...(this.jobFiles ? ["job" as const] : [])];
    }
    if (dir === "/queen") return ["ctl", "telemetry", "export"];
    const prefix = dir.endsWith("/") ? dir : dir + "/";
    const names = new Set<string>();
    for (const p of otherPaths) {
      if (!p.startsWith(prefix)) continue;
      const rest = p.slice(prefix.length);
      names.add(rest.split("/")[0]!);
    }
    return names.size === 0 ? null : [...names].sort();
  }

  /** `/queen/ctl`: `{"spawn":"gpu","lease":{…}}` or `{"kill":"worker-<n>"}`. */
  #queen(payload: string): VmReply {
    const invalid = (error: string) => `ERR ECHO reason=policy detail=invalid-payload path=${QUEEN_CTL} error=${error}`;
    let req: Record<string, unknown>;
    try {
      req = JSON.parse(payload);
    } catch {
      return invalid("not JSON");
    }
    if (typeof req !== "object" || req === null || Array.isArray(req)) return invalid("not a JSON object");
    if (typeof req.kill === "string") {
      if (!this.workers.delete(req.kill)) return `ERR ECHO reason=not-found path=${QUEEN_CTL} error=unknown worker ${req.kill}`;
      this.queenCtl.push(payload);
      this.onEvent({ type: "killed", worker: req.kill });
      return `OK ECHO path=${QUEEN_CTL} bytes=${byteLength(payload)}`;
    }
    if (req.spawn !== "gpu") return invalid("expected spawn or kill");
    const l = req.lease as Record<string, unknown> | undefined;
    if (typeof l !== "object" || l === null) return invalid("spawn gpu needs a lease object");
    const gpuId = l.gpu_id;
    if (typeof gpuId !== "string" || !this.gpus.includes(gpuId)) {
      return `ERR ECHO reason=not-found path=${QUEEN_CTL} error=unknown gpu ${String(gpuId)}`;
    }
    for (const k of ["mem_mb", "streams", "ttl_s"]) {
      if (!Number.isInteger(l[k]) || (l[k] as number) < 1) return invalid(`lease ${k} must be >= 1`);
    }
    const priority = l.priority ?? 0;
    if (!Number.isInteger(priority) || (priority as number) < 0 || (priority as number) > 255) {
      return invalid("lease priority must be 0-255");
    }
    const worker: VmWorker = { id: `worker-${this.#nextWorker}`, gpuId };
    const line = `{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":${JSON.stringify(gpuId)},"worker_id":"${worker.id}",` +
      `"mem_mb":${l.mem_mb},"streams":${l.streams},"ttl_s":${l.ttl_s},"priority":${priority}}`;
    const refused = this.append(`/gpu/${gpuId}/lease`, line);
    if (refused !== null) return `ERR ECHO reason=policy detail=invalid-payload path=${QUEEN_CTL} error=lease log of ${gpuId} full`;
    this.#nextWorker++;
    this.workers.set(worker.id, worker);
    this.queenCtl.push(payload);
    this.onEvent({ type: "spawned", worker, lease: line });
    return `OK ECHO path=${QUEEN_CTL} bytes=${byteLength(payload)}`;
  }
}
