/**
 * Job descriptors as Cohesix sends them (docs/protocol.md#12-what-the-vm-writes-back): `inputs` name staged bundles in
 * the VM's namespace (`/bundles/<path>`, mapped into `--bundle-dir`) or a sealed shard of the
 * job's lease (`/shards/<shard_id>`, operand `b`), `outputs` are VM paths
 * (`/shard/<label>/worker/<worker>/result` or `/worker/<worker>/result`), and `payload_b64`
 * carries the operands: little-endian f32, all of `a` then all of `b`.
 */

export const BUNDLES_PREFIX = "/bundles/";
/** An input naming a sealed shard of the job's lease (`/shards/<shard_id>`): operand b, read from VRAM. */
export const SHARDS_PREFIX = "/shards/";

/**
 * The path of a descriptor input relative to the bundle directory: `/bundles/<path>` maps into
 * it, a relative path is taken as is; anything else is refused (the message says why).
 */
export function bundleRelative(p: string): { path: string } | { error: string } {
  if (p.includes("\0")) return { error: "must not contain NUL" };
  const rel = p.startsWith(BUNDLES_PREFIX) ? p.slice(BUNDLES_PREFIX.length) : p;
  if (rel.startsWith("/") || /^[A-Za-z]:[\\/]/.test(rel) || rel === "") {
    return { error: `must be ${BUNDLES_PREFIX}<path> (a staged bundle) or relative to the bundle directory, got ${JSON.stringify(p)}` };
  }
  if (rel.split(/[\\/]/).includes("..")) return { error: `must not contain '..', got ${JSON.stringify(p)}` };
  return { path: rel };
}

/** The worker a VM output path names (`/shard/<xx>/worker/<id>/result`, `/worker/<id>/result`), or null. */
export function workerOfOutput(path: string): string | null {
  const m = /^(?:\/shard\/[0-9a-f]{2})?\/worker\/([A-Za-z0-9._-]{1,64})\/result$/.exec(path);
  return m === null ? null : m[1]!;
}

/** Operands decoded from a payload: `a` and `b`, and the size (vadd: elements; matmul: N of N×N). */
export interface Operands {
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly n: number;
}

/**
 * Decodes `bytes` as the operands of `kernel`, or says why they do not fit (naming payload_b64).
 * With `parts` 1 they are `a` alone (a sealed shard is `b`): `b` is then empty.
 */
export function decodeOperands(kernel: "vadd" | "matmul", bytes: Uint8Array, parts: 1 | 2 = 2): Operands | { error: string } {
  const floats = bytes.length / 4;
  if (parts === 1) return decodeA(kernel, bytes);
  if (kernel === "vadd") {
    if (bytes.length === 0 || bytes.length % 8 !== 0) {
      return { error: `payload_b64 must hold a then b, two equal halves of little-endian f32 (vadd), got ${bytes.length} bytes` };
    }
    const n = floats / 2;
    return { a: readF32(bytes, 0, n), b: readF32(bytes, n, n), n };
  }
  const n = Math.round(Math.sqrt(floats / 2));
  if (bytes.length === 0 || bytes.length % 8 !== 0 || 2 * n * n !== floats) {
    return { error: `payload_b64 must hold a then b, two square n×n matrices of little-endian f32 (matmul), got ${bytes.length} bytes` };
  }
  return { a: readF32(bytes, 0, n * n), b: readF32(bytes, n * n, n * n), n };
}

/** `bytes` as operand `a` alone: n floats (vadd) or an n×n matrix (matmul). */
function decodeA(kernel: "vadd" | "matmul", bytes: Uint8Array): Operands | { error: string } {
  const floats = bytes.length / 4;
  const n = kernel === "vadd" ? floats : Math.round(Math.sqrt(floats));
  if (bytes.length === 0 || bytes.length % 4 !== 0 || (kernel === "matmul" && n * n !== floats)) {
    const shape = kernel === "vadd" ? "little-endian f32" : "a square n×n matrix of little-endian f32";
    return { error: `payload_b64 must hold operand a alone (the shard is b), ${shape} (${kernel}), got ${bytes.length} bytes` };
  }
  return { a: readF32(bytes, 0, floats), b: new Float32Array(0), n };
}

function readF32(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32((offset + i) * 4, true);
  return out;
}

/** `values` as little-endian f32 bytes (the result the VM expects). */
export function f32Bytes(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

/** Bytes a run of `kernel` on operands of size `n` needs on the device (a, b and c). */
export function operandBytes(kernel: "vadd" | "matmul", n: number): number {
  return kernel === "vadd" ? 3 * 4 * n : 3 * 4 * n * n;
}

/** The kernel on the CPU, in float32 as the GPU computes it. */
export function computeOnCpu(kernel: "vadd" | "matmul", ops: Operands): Float32Array {
  const { a, b, n } = ops;
  if (kernel === "vadd") {
    const c = new Float32Array(n);
    for (let i = 0; i < n; i++) c[i] = a[i]! + b[i]!;
    return c;
  }
  const c = new Float32Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < n; k++) {
      const av = a[r * n + k]!;
      for (let col = 0; col < n; col++) c[r * n + col]! += av * b[k * n + col]!;
    }
  }
  return c;
}

/** The largest error of `out` against a float64 computation, relative for matmul's dot products. */
export function operandError(kernel: "vadd" | "matmul", ops: Operands, out: Float32Array): number {
  const { a, b, n } = ops;
  let max = 0;
  if (kernel === "vadd") {
    for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(out[i]! - (a[i]! + b[i]!)) / Math.max(1, Math.abs(a[i]! + b[i]!)));
    return max;
  }
  const step = Math.max(1, Math.floor((n * n) / 4096));
  for (let idx = 0; idx < n * n; idx += step) {
    const r = Math.floor(idx / n);
    const col = idx % n;
    let dot = 0;
    for (let k = 0; k < n; k++) dot += a[r * n + k]! * b[k * n + col]!;
    max = Math.max(max, Math.abs(out[idx]! - dot) / Math.max(1, Math.abs(dot)));
  }
  return max;
}
