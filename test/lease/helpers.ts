/** What the lease tests share: requests with fresh worker ids, and a refusal's code, message and field. */
import { LeaseError, type LeaseRequest } from "../../src/lease/types.ts";

/** A request maker: `GPU-0`, 1024 MiB, 1 stream, 60 s, priority 5 and a new worker id each call, unless `base` or the call say otherwise. */
export function requests(base: Partial<LeaseRequest> = {}): (o?: Partial<LeaseRequest>) => LeaseRequest {
  let n = 0;
  return (o = {}) => ({ gpu_id: "GPU-0", worker_id: `w${++n}`, mem_mb: 1024, streams: 1, ttl_s: 60, priority: 5, ...base, ...o });
}

/** The LeaseError `f` throws, as `{code, message, field}`; anything else (or nothing) fails the test. */
export function refusal(f: () => unknown): { code: string; message: string; field: string | undefined } {
  try {
    f();
  } catch (e) {
    if (e instanceof LeaseError) return { code: e.code, message: e.message, field: e.field };
    throw e;
  }
  throw new Error("expected a LeaseError");
}
