/**
 * Sealed shards handed to the lease's holder (docs/vram-sharing.md): one Unix socket per live
 * lease, `<state>/share/<lease>.sock` (mode 0600, in a 0700 folder; a container gets it through
 * the lease's CDI device), beside the lease's share token `<lease>.token` (0600). A client sends
 * one JSON line per request with the token; `open` answers the shard's size, digests and
 * attestation with a file descriptor for its memory attached (SCM_RIGHTS), which the client maps
 * read-only; `check` is the execute-check; `list` the lease's shards. Only this lease's shards,
 * only SEALED ones, only on shareable memory: anything else is refused with the reason. A
 * shard's release, its lease's end or a failed verification revokes further hand-outs, audited
 * with the consumers that had it and whether they still run.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join, resolve } from "node:path";
import process from "node:process";
import type { PeerCredentials } from "../../ffi/unix-share.ts";
import type { Lease } from "../lease/types.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import type { VramAudit } from "./audit.ts";
import { hmac, sameMac } from "./seal-key.ts";
import type { Shard, ShardStore } from "./shards.ts";
import { hex } from "./tree.ts";

/** The libc calls the hub needs (ffi/unix-share.ts). */
export interface ShareLibc {
  peer(fd: number): PeerCredentials;
  send(fd: number, bytes: Uint8Array, pass?: number): boolean;
  close(fd: number): void;
}

/** A process a shard was handed to. */
export interface Consumer {
  readonly pid: number;
  readonly uid: number;
  readonly at: number;
}

/** What a request gets back (one JSON line). */
export type ShareReply = { ok: true; [k: string]: unknown } | {
  ok: false;
  code: string;
  message: string;
  retryable: boolean;
  [k: string]: unknown;
};

export interface ShareHubOptions {
  /** `<state>/share`. */
  readonly dir: string;
  /** null: sharing is unavailable on this bridge, and `unavailable` says why. */
  readonly libc: ShareLibc | null;
  readonly unavailable?: string;
  readonly store: ShardStore;
  /** Derives each lease's share token (never logged, never in an answer but the holder's own). */
  readonly tokenKey: Uint8Array;
  readonly attest: (shard: Shard) => unknown;
  /** The execute-check (execute-check.ts) for `check` requests. */
  readonly check: (shardId: string) => Promise<ShareReply>;
  readonly audit: VramAudit;
  readonly log: Logger;
  readonly clock: Clock;
}

/** Where the lease's CDI device mounts its socket and token in a container (src/cdi/keeper.ts). */
export const SHARE_MOUNT = Object.freeze({ socket: "/run/gpu-bridge/share.sock", token: "/run/gpu-bridge/share.token" });

/** The longest path a Unix socket can be bound to (sun_path less its NUL). */
const SUN_PATH_MAX = 107;
const MAX_LINE = 64 * 1024;

export class ShareHub {
  readonly #o: ShareHubOptions;
  readonly #servers = new Map<string, Server>();
  readonly #consumers = new Map<string, Consumer[]>();

  constructor(o: ShareHubOptions) {
    this.#o = o;
  }

  /** Why sharing is off on this bridge; null when it is on. */
  get unavailable(): string | null {
    return this.#o.libc === null ? (this.#o.unavailable ?? "sharing is unavailable") : null;
  }

  /** Where lease `id`'s socket and token live on the host. */
  paths(leaseId: string): { socket: string; token: string } {
    const dir = resolve(this.#o.dir); // absolute: a CDI mount needs it
    return { socket: join(dir, `${leaseId}.sock`), token: join(dir, `${leaseId}.token`) };
  }

  /** Lease `id`'s socket and token as its container mounts them; null when sharing is off. */
  mount(leaseId: string): { socket: string; token: string; socketInContainer: string; tokenInContainer: string } | null {
    if (this.#o.libc === null) return null;
    return { ...this.paths(leaseId), socketInContainer: SHARE_MOUNT.socket, tokenInContainer: SHARE_MOUNT.token };
  }

  /** The share token of lease `id`: what its holder presents on the socket. */
  token(leaseId: string): string {
    return hex(hmac(this.#o.tokenKey, `gpu-bridge-share:${leaseId}`));
  }

  /** The processes each of `leaseId`'s shards went to, and whether they still run. */
  consumers(shardId: string): (Consumer & { running: boolean })[] {
    return (this.#consumers.get(shardId) ?? []).map((c) => ({ ...c, running: existsSync(`/proc/${c.pid}`) }));
  }

  /** Creates lease `lease`'s socket and token file; a failure is logged and leaves the lease without sharing. */
  async openLease(lease: Lease): Promise<void> {
    if (this.#o.libc === null || this.#servers.has(lease.id)) return;
    const { socket, token } = this.paths(lease.id);
    try {
      if (socket.length > SUN_PATH_MAX) {
        throw new Error(`the path ${socket} is longer than a Unix socket allows (${SUN_PATH_MAX} bytes): use a shorter --state-dir`);
      }
      mkdirSync(this.#o.dir, { recursive: true, mode: 0o700 });
      chmodSync(this.#o.dir, 0o700);
      rmSync(socket, { force: true });
      writeFileSync(token, this.token(lease.id) + "\n", { mode: 0o600 });
      const server = createServer((s) => this.#serve(lease.id, s));
      this.#servers.set(lease.id, server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(socket, () => resolve());
      });
      chmodSync(socket, 0o600);
    } catch (error) {
      this.#servers.get(lease.id)?.close();
      this.#servers.delete(lease.id);
      this.#o.log.warn(`Cannot share lease ${lease.id}'s shards: ${(error as Error).message}`);
    }
  }

  /** Removes lease `id`'s socket and token (its end); its shards' hand-outs are revoked as they are released. */
  closeLease(leaseId: string): void {
    const server = this.#servers.get(leaseId);
    this.#servers.delete(leaseId);
    server?.close();
    const { socket, token } = this.paths(leaseId);
    rmSync(socket, { force: true });
    rmSync(token, { force: true });
  }

  /** No more hand-outs of `shard` (released or failed): audited with who had it. */
  revoke(shard: Shard, reason: string): void {
    const consumers = this.consumers(shard.shard_id);
    if (shard.state !== "FAILED") this.#consumers.delete(shard.shard_id);
    this.#o.audit.record("ShareRevoked", {
      shard_id: shard.shard_id,
      lease_id: shard.lease_id,
      worker_id: shard.worker_id,
      reason,
      consumers: consumers.map((c) => ({ pid: c.pid, uid: c.uid, handed_at: new Date(c.at).toISOString(), running: c.running })),
      still_mapped_by: consumers.filter((c) => c.running).map((c) => c.pid),
    });
  }

  close(): void {
    for (const id of [...this.#servers.keys()]) this.closeLease(id);
  }

  /** Reads request lines from one connection and answers each in order. */
  #serve(leaseId: string, s: Socket): void {
    let pending = "";
    let chain = Promise.resolve();
    s.on("error", () => s.destroy());
    s.on("data", (chunk) => {
      pending += chunk.toString("utf8");
      if (pending.length > MAX_LINE) return void s.destroy();
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        chain = chain.then(() => this.#answer(leaseId, s, line));
      }
    });
  }

  async #answer(leaseId: string, s: Socket, line: string): Promise<void> {
    const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (s.destroyed || typeof fd !== "number" || fd < 0) return void s.destroy();
    const libc = this.#o.libc!;
    let reply: ShareReply;
    let pass: { fd: number; owned: boolean } | undefined;
    try {
      const peer = libc.peer(fd);
      ({ reply, pass } = await this.#handle(leaseId, peer, line));
    } catch (error) {
      reply = refuse("internal", `Cannot answer: ${(error as Error).message}`, false);
    }
    try {
      if (!libc.send(fd, new TextEncoder().encode(JSON.stringify(reply) + "\n"), pass?.fd)) s.destroy();
    } finally {
      if (pass?.owned) libc.close(pass.fd);
    }
  }

  async #handle(
    leaseId: string,
    peer: PeerCredentials,
    line: string,
  ): Promise<{ reply: ShareReply; pass?: { fd: number; owned: boolean } }> {
    let req: { op?: unknown; token?: unknown; shard_id?: unknown };
    try {
      req = JSON.parse(line);
      if (req === null || typeof req !== "object") throw new Error("not an object");
    } catch {
      return {
        reply: refuse("invalid", `Cannot parse the request: one JSON object per line, got ${JSON.stringify(line.slice(0, 80))}`, false),
      };
    }
    if (peer.uid !== process.getuid?.() && peer.uid !== 0) {
      return { reply: refuse("permission", `Cannot serve uid ${peer.uid}: only the bridge's user or root may use this socket`, false) };
    }
    const token = typeof req.token === "string" ? new TextEncoder().encode(req.token) : new Uint8Array(0);
    if (!sameMac(token, new TextEncoder().encode(this.token(leaseId)))) {
      return {
        reply: refuse("permission", `Cannot serve: token must be lease ${leaseId}'s share token (its .token file)`, false, "token"),
      };
    }
    const lease = this.#o.store.list(leaseId);
    if (req.op === "list") return { reply: { ok: true, lease_id: leaseId, shards: lease.map((x) => this.#describe(x)) } };
    if (req.op !== "open" && req.op !== "check") {
      return { reply: refuse("invalid", `op must be open, check or list, got ${JSON.stringify(req.op)}`, false, "op") };
    }
    const shard = lease.find((x) => x.shard_id === req.shard_id);
    if (shard === undefined) {
      return {
        reply: refuse("not_sealed", `Shard ${JSON.stringify(req.shard_id)} is not sealed under lease ${leaseId}`, false, "shard_id"),
      };
    }
    if (req.op === "check") return { reply: await this.#o.check(shard.shard_id) };
    return this.#open(shard, peer);
  }

  /** The hand-out: only a SEALED shard on exportable memory. */
  #open(shard: Shard, peer: PeerCredentials): { reply: ShareReply; pass?: { fd: number; owned: boolean } } {
    if (shard.state !== "SEALED") {
      return {
        reply: refuse("integrity_violation", `Cannot hand out shard ${shard.shard_id}: it failed verification (${shard.failure})`, false),
      };
    }
    const refusal = this.#o.store.shareRefusal(shard.shard_id);
    if (refusal !== null) {
      return {
        reply: refuse("not_shareable", `Cannot hand out shard ${shard.shard_id}: ${refusal}`, false, undefined, { shareable: false }),
      };
    }
    const pass = this.#o.store.exportFd(shard.shard_id);
    const list = this.#consumers.get(shard.shard_id) ?? [];
    list.push({ pid: peer.pid, uid: peer.uid, at: this.#o.clock.now() });
    this.#consumers.set(shard.shard_id, list);
    this.#o.audit.record("ShareHandedOut", {
      shard_id: shard.shard_id,
      lease_id: shard.lease_id,
      worker_id: shard.worker_id,
      consumer_pid: peer.pid,
      consumer_uid: peer.uid,
      access: "read-only",
    });
    return {
      reply: { ok: true, ...this.#describe(shard), access: "read-only", attestation: this.#o.attest(shard) },
      pass,
    };
  }

  #describe(s: Shard) {
    const refusal = this.#o.store.shareRefusal(s.shard_id);
    return {
      shard_id: s.shard_id,
      gpu_device: s.gpu_device,
      vram_bytes: s.vram_bytes,
      mapped_bytes: this.#o.store.mappedBytes(s.shard_id),
      digest: s.digest,
      tree_digest: s.tree_digest,
      sealed_at: new Date(s.sealed_at).toISOString(),
      state: s.state,
      shareable: refusal === null,
      ...(refusal !== null && { shareable_reason: refusal }),
    };
  }
}

function refuse(code: string, message: string, retryable: boolean, field?: string, extra: Record<string, unknown> = {}): ShareReply {
  return { ok: false, code, message, retryable, ...(field !== undefined && { field }), ...extra };
}
