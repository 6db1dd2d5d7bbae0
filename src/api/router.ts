/**
 * One sub-app per resource. Each route is registered once, with what a client needs to know of
 * it (its request body and query, as the valibot schemas the handler parses with, its answer and
 * its own refusals): the root app mounts the handlers from that table, answers a known path with
 * another method with 405 and `Allow`, and the OpenAPI document (openapi.ts) is built from the
 * same table, so neither can drift from the routes.
 */
import type { Context } from "hono";
import type * as v from "valibot";

export type Method = "GET" | "POST" | "PUT" | "DELETE";
export type Handler = (c: Context) => Response | Promise<Response>;
// deno-lint-ignore no-explicit-any
type Schema = v.GenericSchema<any, any>;

/** What a route takes and answers, for the OpenAPI document. */
export interface RouteDoc {
  /** One line: what the route does. */
  readonly summary: string;
  /** More, when one line is not enough (Markdown). */
  readonly description?: string;
  /** The query's parameters: the strictObject the handler parses the query with (schemas.ts). */
  readonly query?: Schema;
  /**
   * The request body: one schema per media type (null: bytes or text with no schema), and
   * whether it may be left out.
   */
  readonly body?: { readonly required: boolean; readonly content: Readonly<Record<string, Schema | null>> };
  /** The answer when all goes well. */
  readonly ok: {
    readonly status: number;
    readonly description: string;
    /** Its media type; JSON when absent. */
    readonly type?: string;
    readonly schema?: Schema;
    /** Headers it always carries, with what they say. */
    readonly headers?: Readonly<Record<string, string>>;
    /** Another success, with the same body and headers. */
    readonly also?: { readonly status: number; readonly description: string };
  };
  /** The statuses of its own refusals, beyond those of every route and of its body (openapi.ts). */
  readonly errors?: readonly number[];
}

/** One route: its method, its path relative to the sub-app, its documentation and handler. */
export interface Route {
  readonly method: Method;
  readonly path: string;
  readonly doc: RouteDoc;
  readonly handler: Handler;
}

/** A sub-app: the routes it serves, in the order they were registered. */
export interface SubApp {
  readonly routes: readonly Route[];
  on(method: Method, path: string, doc: RouteDoc, handler: Handler): void;
}

/** A new, empty sub-app. */
export function subApp(): SubApp {
  const routes: Route[] = [];
  return {
    routes,
    on(method, path, doc, handler) {
      routes.push({ method, path, doc, handler });
    },
  };
}

/** A path parameter the route pattern guarantees. */
export const param = (c: Context, name: string): string => c.req.param(name) ?? "";

/** `prefix` and a sub-app's `path` as one path. */
export const joinPath = (prefix: string, path: string): string => (path === "/" ? prefix : `${prefix === "/" ? "" : prefix}${path}`);
