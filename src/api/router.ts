/**
 * One sub-app per resource, mounted on the root with `app.route`. Each sub-app records the
 * methods of its paths, so the root can answer a known path with another method with 405 and
 * `Allow` rather than 404.
 */
import { type Context, Hono } from "hono";

type Method = "GET" | "POST" | "PUT" | "DELETE";
type Handler = (c: Context) => Response | Promise<Response>;

/** A sub-app and the methods of each of its paths. */
export interface SubApp {
  readonly app: Hono;
  readonly methods: ReadonlyMap<string, ReadonlySet<string>>;
  on(method: Method, path: string, handler: Handler): void;
}

/** A new, empty sub-app. */
export function subApp(): SubApp {
  const app = new Hono();
  const methods = new Map<string, Set<string>>();
  return {
    app,
    methods,
    on(method, path, handler) {
      let m = methods.get(path);
      if (m === undefined) methods.set(path, m = new Set());
      m.add(method);
      if (method === "GET") m.add("HEAD");
      app.on(method, path, handler);
    },
  };
}

/** A path parameter the route pattern guarantees. */
export const param = (c: Context, name: string): string => c.req.param(name) ?? "";
