/**
 * docs/api.md, the per-route reference, rendered from the OpenAPI document the bridge serves at
 * /v1/openapi.json (src/api/openapi.ts), for a bridge with every capability. test/api/api-doc.test.ts
 * fails when the file and the document disagree; `bun scripts/api-doc.ts` writes it again.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { apiRoutes, type BridgeFacade } from "../src/api/app.ts";
import { openapiDocument } from "../src/api/openapi.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** The document of a bridge with telemetry, shards, CDI and events: building routes reads only which parts exist. */
export function fullDocument(): Json {
  const bridge = { version: "0", telemetry: {}, vram: {}, cdi: {}, models: {}, events: {} } as unknown as BridgeFacade;
  return openapiDocument(apiRoutes(bridge), "0");
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** A JSON Schema in a few words: `string`, `number (default 0)`, `"vadd" \| "matmul"`, `array of …`. */
function typeOf(s: Json): string {
  if (s === undefined || Object.keys(s).length === 0) return "any";
  if (s.enum !== undefined) return s.enum.map((e: unknown) => JSON.stringify(e)).join(" or ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.anyOf !== undefined) return s.anyOf.map(typeOf).join(" or ");
  if (s.type === "array") {
    if (Array.isArray(s.prefixItems)) return `[${s.prefixItems.map(typeOf).join(", ")}]`;
    return `array of ${typeOf(s.items)}`;
  }
  if (s.type === "object" && s.properties !== undefined) return `object {${Object.keys(s.properties).join(", ")}}`;
  return String(s.type);
}

/** The fields of an object schema as table rows; nested objects get their dotted fields too. */
function fieldRows(s: Json, prefix = ""): string[] {
  const rows: string[] = [];
  for (const [name, p] of Object.entries(s.properties ?? {}) as [string, Json][]) {
    const required = (s.required ?? []).includes(name) ? "yes" : "no";
    const notes = [p.description, p.default !== undefined && `default ${JSON.stringify(p.default)}`].filter(Boolean).join("; ");
    rows.push(`| \`${prefix}${name}\` | ${cell(typeOf(p))} | ${required} | ${cell(notes)} |`);
    if (p.type === "object" && p.properties !== undefined) rows.push(...fieldRows(p, `${prefix}${name}.`));
  }
  return rows;
}

function body(content: Record<string, Json>): string[] {
  const out: string[] = [];
  for (const [type, media] of Object.entries(content)) {
    const s = media.schema;
    if (s?.type === "object" && s.properties !== undefined) {
      out.push(`Request body, \`${type}\`${s.additionalProperties === false ? " (unknown fields are refused)" : ""}:`, "");
      out.push("| field | type | required | notes |", "| --- | --- | --- | --- |", ...fieldRows(s), "");
    } else if (s?.anyOf !== undefined) {
      out.push(`Request body, \`${type}\`: ${s.anyOf.map(typeOf).join(", or ")}.`, "");
    } else out.push(`Request body, \`${type}\`: ${s === undefined ? "the bytes" : typeOf(s)}.`, "");
  }
  return out;
}

/** docs/api.md from `doc`. */
export function renderApiReference(doc: Json): string {
  const out = [
    "# Local API reference",
    "",
    "<!-- Rendered by `bun scripts/api-doc.ts` from the OpenAPI document; test/api/api-doc.test.ts keeps them equal. -->",
    "",
    "Every route of the bridge's local HTTP API, with what it takes and what it answers. The same, machine-readable, is",
    "served by a running bridge at `GET /v1/openapi.json` (OpenAPI 3.1; its schemas are converted from the ones the",
    "routes validate with). A bridge without telemetry or sealed shards does not serve those routes.",
    "",
    doc.info.description,
    "",
    "What each refusal status means here:",
    "",
    "| status | meaning |",
    "| --- | --- |",
  ];
  const statuses = new Set<number>();
  for (const item of Object.values(doc.paths) as Json[]) {
    for (const op of Object.values(item) as Json[]) for (const s of Object.keys(op.responses)) statuses.add(Number(s));
  }
  const meaning = new Map<number, string>();
  for (const item of Object.values(doc.paths) as Json[]) {
    for (const op of Object.values(item) as Json[]) {
      for (const [s, r] of Object.entries(op.responses) as [string, Json][]) {
        if (r.content?.["application/json"]?.schema?.$ref !== undefined) meaning.set(Number(s), r.description);
      }
    }
  }
  for (const s of [...statuses].filter((s) => meaning.has(s)).sort((a, b) => a - b)) out.push(`| ${s} | ${cell(meaning.get(s)!)} |`);
  out.push("");
  for (const [path, item] of Object.entries(doc.paths) as [string, Json][]) {
    const ops = Object.entries(item) as [string, Json][];
    const real = ops.filter(([, op]) => op.tags === undefined);
    for (const [method, op] of real) {
      out.push(`## ${method.toUpperCase()} ${path}`, "", `${op.summary}.${op.description === undefined ? "" : ` ${op.description}`}`, "");
      out.push(op.security.length === 0 ? "No token needed." : "Needs `Authorization: Bearer <token>`.", "");
      const params = (op.parameters ?? []).filter((p: Json) => p.in === "query");
      if (params.length > 0) {
        out.push("| query parameter | type | required | notes |", "| --- | --- | --- | --- |");
        for (const p of params) out.push(`| \`${p.name}\` | ${typeOf(p.schema)} | ${p.required ? "yes" : "no"} | ${cell(p.description ?? "")} |`);
        out.push("");
      }
      if (op.requestBody !== undefined) {
        if (!op.requestBody.required) out.push("The body may be left out.", "");
        out.push(...body(op.requestBody.content));
      }
      out.push("| answer | what |", "| --- | --- |");
      for (const [status, r] of Object.entries(op.responses) as [string, Json][]) {
        const type = Object.keys(r.content ?? {})[0];
        const ok = r.content?.[type!]?.schema?.$ref === undefined;
        const headers = Object.entries(r.headers ?? {}).map(([h, d]) => `${h}: ${(d as Json).description}`);
        out.push(
          `| ${status}${ok && type !== undefined ? ` \`${type}\`` : ""} | ${
            cell(ok ? `${r.description}${headers.length > 0 ? ` Headers: ${headers.join(", ")}.` : ""}` : "refused, see above")
          } |`,
        );
      }
      out.push("");
    }
    const allow = ops.find(([, op]) => op.tags !== undefined)?.[1].responses["405"].headers.Allow.schema.const;
    if (allow !== undefined) out.push(`Any other method on \`${path}\`: 405, \`Allow: ${allow}\`, token or not.`, "");
  }
  return out.join("\n");
}

if (import.meta.main) {
  const file = join(import.meta.dir, "..", "docs", "api.md");
  writeFileSync(file, renderApiReference(fullDocument()));
  console.log(`wrote ${file}`);
}
