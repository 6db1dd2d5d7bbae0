/**
 * What makes a lease's container an MPS client held to the lease's terms: the GPU's pipe folder
 * mounted where CUDA looks for it, `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` at the lease's memory and,
 * when the lease holds less than the whole GPU's streams, `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`
 * at its share of the SMs. Pure: the caller says where the pipe folder is.
 */
import { SOCKET_OPTIONS } from "../cdi/discover.ts";
import type { CdiContainerEdits } from "../cdi/schema.ts";

/** Where the container sees the pipe folder: CUDA's default, so a client that ignores the env still finds it. */
export const MPS_CONTAINER_PIPE = "/tmp/nvidia-mps";

/**
 * The memory cap in MPS's syntax, `<device>=<size>`: the container sees one GPU, its device 0,
 * and the size is the lease's MiB with the `M` suffix (e.g. `0=512M`).
 */
export const pinnedMemLimit = (memMb: number): string => `0=${memMb}M`;

/**
 * The lease's share of the SMs in percent: its streams out of the streams a GPU may lease,
 * rounded down (a cap never grants more than the share) and at least 1; null when the lease
 * holds every stream, which is the whole GPU and needs no cap.
 */
export function activeThreadPercentage(streams: number, streamsPerGpu: number): number | null {
  if (streams >= streamsPerGpu) return null;
  return Math.max(1, Math.floor((streams * 100) / streamsPerGpu));
}

/** The edits for a lease of `memMb` MiB and `streams` streams on a GPU whose daemon's pipe folder is `pipeDir`. */
export function mpsClientEdits(
  lease: { readonly mem_mb: number; readonly streams: number },
  pipeDir: string,
  streamsPerGpu: number,
): CdiContainerEdits {
  const pct = activeThreadPercentage(lease.streams, streamsPerGpu);
  return {
    env: [
      `CUDA_MPS_PIPE_DIRECTORY=${MPS_CONTAINER_PIPE}`,
      `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=${pinnedMemLimit(lease.mem_mb)}`,
      ...(pct === null ? [] : [`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=${pct}`]),
    ],
    // Read-write: a client opens the daemon's endpoint for writing. As nvidia-ctk mounts sockets.
    mounts: [{ hostPath: pipeDir, containerPath: MPS_CONTAINER_PIPE, options: [...SOCKET_OPTIONS] }],
  };
}

/** A GPU's daemon as the caps need it (MpsDaemons.get). */
export interface MpsDaemonView {
  readonly state: "started" | "adopted" | "failed" | "skipped";
  readonly pipe_dir: string;
  readonly reason?: string;
}

/**
 * The edits each lease's CDI device gets under `--mps`, or why it gets no device: a cap that
 * cannot be enforced is not handed out as if it were. A lease of a MIG device needs none (the
 * MIG partition is its cap).
 */
export function mpsLeaseEdits(
  daemonOf: (gpuId: string) => MpsDaemonView | undefined,
  streamsPerGpu: number,
): (
  lease: { readonly gpu_id: string; readonly mig_uuid?: string; readonly mem_mb: number; readonly streams: number },
) => CdiContainerEdits | string {
  return (lease) => {
    if (lease.mig_uuid !== undefined) return {};
    const d = daemonOf(lease.gpu_id);
    if (d === undefined) return `--mps is on and ${lease.gpu_id} has no MPS control daemon (it was not there when the bridge started)`;
    if (d.state === "started" || d.state === "adopted") return mpsClientEdits(lease, d.pipe_dir, streamsPerGpu);
    return `--mps is on and ${lease.gpu_id} has no MPS control daemon: ${d.reason}`;
  };
}
