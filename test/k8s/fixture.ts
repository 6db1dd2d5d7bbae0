/** A bridge with the device plugin on the mock GPUs, a stub kubelet and a CDI folder, all in one temporary folder. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import type { GpuInfo } from "../../src/contract/info.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import type { InventoryBackend } from "../../src/inventory/types.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { StubKubelet } from "../../mock/kubelet/stub.ts";
import { memoryLogger, tempFolder } from "../helpers.ts";

export const UUID0 = "GPU-00000000-0000-4000-8000-000000000000";
export const UUID1 = "GPU-00000000-0000-4000-8000-000000000001";
export const RESOURCE = "cohesix.io/gpu";

/** The mock backend, with GPUs that can be made to stop answering (left out of list(), as NVML's backend does). */
export class FlakyBackend implements InventoryBackend {
  readonly name = "mock";
  readonly #inner = mockBackend();
  readonly silent = new Set<string>();
  async list(): Promise<GpuInfo[]> {
    return (await this.#inner.list()).filter((g) => !this.silent.has(g.id));
  }
  stats() {
    return this.#inner.stats();
  }
  close(): void {}
}

export interface K8sRig {
  readonly dir: string;
  readonly kubelet: StubKubelet;
  readonly backend: FlakyBackend;
  readonly cdiDir: string;
  readonly lines: string[];
  bridge: Bridge;
  /** Starts another bridge on the same folders (after `bridge.stop()`: a restart). */
  restart(): Promise<Bridge>;
}

/** `serve` on the mock GPUs with the plugin on, its state and CDI folders under `dir`. */
export function serveArgs(dir: string, kubeletDir: string): string[] {
  return [
    ...["serve", "--mock", "--no-api", "--state-dir", join(dir, "state"), "--cdi-dir", join(dir, "cdi")],
    ...["--kubelet-dir", kubeletDir, "--k8s-resource", RESOURCE],
  ];
}

/** A sys tree where the mock GPUs' PCI devices sit on NUMA nodes 0 and 1. */
function sysTree(dir: string): string {
  const root = join(dir, "sysroot");
  for (const [bus, node] of [["0000:01:00.0", "0"], ["0000:02:00.0", "1"]] as const) {
    mkdirSync(join(root, "sys/bus/pci/devices", bus), { recursive: true });
    writeFileSync(join(root, "sys/bus/pci/devices", bus, "numa_node"), `${node}\n`);
  }
  return root;
}

/**
 * The bridge with the plugin on, and the stub kubelet; with `kubeletDir`, the kubelet is
 * someone else's (the Python one) and the stub is made but not started.
 */
export async function k8sRig(
  extra: readonly string[] = [],
  opts: { journal?: boolean; kubeletDir?: string; backend?: InventoryBackend } = {},
): Promise<K8sRig> {
  const dir = tempFolder("gbh-k8s-");
  const kubelet = new StubKubelet(opts.kubeletDir ?? join(dir, "kubelet"));
  if (opts.kubeletDir === undefined) await kubelet.start();
  const cdiDir = join(dir, "cdi");
  const argv = [...serveArgs(dir, kubelet.dir), "--k8s-poll-ms", "100", "--sys-root", sysTree(dir), ...extra];
  const c = parseCommand(argv, {});
  if (c.kind !== "serve") throw new Error(`expected serve, got ${c.kind}`);
  const backend = new FlakyBackend();
  const { log, lines } = memoryLogger();
  const start = () =>
    createBridge(c.options, { runtime: bunRuntime(), log, backend: opts.backend ?? backend }, {
      noJournal: opts.journal !== true,
      k8s: { watchMs: 50, probeMs: 100, graceMs: 300 },
    });
  const rig: K8sRig = {
    dir,
    kubelet,
    backend,
    cdiDir,
    lines,
    bridge: await start(),
    async restart() {
      rig.bridge = await start();
      return rig.bridge;
    },
  };
  return rig;
}
