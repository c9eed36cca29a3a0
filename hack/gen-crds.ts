// Writes deploy/crds/<plural>.<group>.yaml from the schemas in api/ (npm run gen:crds).
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { crdFiles } from "../api/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, "deploy/crds");
mkdirSync(dir, { recursive: true });
const files = crdFiles();
const wanted = new Set(files.map((f) => f.path));
for (const name of readdirSync(dir)) {
  if (name.endsWith(".yaml") && !wanted.has(`deploy/crds/${name}`)) rmSync(join(dir, name));
}
for (const f of files) writeFileSync(join(root, f.path), f.content);
console.log(`wrote ${files.length} CRDs to deploy/crds/`);
