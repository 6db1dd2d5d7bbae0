/** `/v1/openapi.json`: the OpenAPI 3.1 document of the routes this bridge serves (openapi.ts). */
import { openapiDocument } from "./openapi.ts";
import { type Route, type SubApp, subApp } from "./router.ts";

/** The document's route, to mount at `/`; `routes` are the bridge's routes, this one included. */
export function openapiRoutes(version: string, routes: () => readonly Route[]): SubApp {
  const r = subApp();
  // Made on first asking (the routes never change while the bridge runs), then served as is.
  let text: string | null = null;
  r.on("GET", "/v1/openapi.json", {
    summary: "This document: the OpenAPI 3.1 description of every route the bridge serves",
    ok: { status: 200, description: "The OpenAPI 3.1 document." },
  }, () => {
    text ??= JSON.stringify(openapiDocument(routes(), version));
    return new Response(text, { headers: { "content-type": "application/json" } });
  });
  return r;
}
