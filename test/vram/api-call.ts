/** An authorised JSON call to a test bridge's API: status and parsed body. */

// deno-lint-ignore no-explicit-any
export type Json = Record<string, any>;

/** `call(method, path, body?, type?)` against the API `api()` returns once it has started. */
export function apiCall(api: () => { port: number; token: string }) {
  return async (method: string, path: string, body?: string | Uint8Array, type?: string): Promise<{ status: number; body: Json }> => {
    const res = await fetch(`http://127.0.0.1:${api().port}${path}`, {
      method,
      headers: { Authorization: `Bearer ${api().token}`, ...(type && { "content-type": type }) },
      ...(body !== undefined && { body }),
    });
    return { status: res.status, body: await res.json() as Json };
  };
}
