/**
 * Prints the longest functions under the given folders (default `src`), by lines from the
 * declaration's first line to its closing brace: `bun scripts/fn-lengths.ts [--top N] [dir…]`.
 * Nested functions count inside their parent and again on their own.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

const args = process.argv.slice(2);
let top = 10;
const dirs: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--top") top = Number(args[++i]);
  else dirs.push(args[i]!);
}
if (dirs.length === 0) dirs.push("src");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

function nameOf(node: ts.Node, sf: ts.SourceFile): string {
  const named = node as { name?: ts.Node };
  if (named.name !== undefined) {
    const own = named.name.getText(sf);
    const cls = ts.isClassLike(node.parent) && node.parent.name !== undefined ? `${node.parent.name.text}.` : "";
    return cls + own;
  }
  if (ts.isConstructorDeclaration(node) && node.parent.name !== undefined) return `${node.parent.name.text}.constructor`;
  const p = node.parent;
  if (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)) return p.name.getText(sf);
  return "(anonymous)";
}

const rows: { lines: number; where: string; name: string }[] = [];
for (const dir of dirs) {
  for (const file of files(dir)) {
    const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node) => {
      if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body !== undefined) {
        const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        rows.push({ lines: end - start + 1, where: `${file}:${start + 1}`, name: nameOf(node, sf) });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
}
rows.sort((a, b) => b.lines - a.lines);
for (const r of rows.slice(0, top)) console.log(`${String(r.lines).padStart(5)}  ${r.name}  ${r.where}`);
