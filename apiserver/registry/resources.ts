// The resource registry: every served kind, built from its CRD-shaped definition. Discovery, OpenAPI, Table
// columns, field selectors and validation all read from here; a CRD created through the API is added the same way.
import type { JSONSchemaProps, PrinterColumn, ResourceDefinition } from "../../api/meta/v1/crd.js";

export interface ServedResource {
  def: ResourceDefinition;
  group: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  /** served versions, the storage version first */
  versions: string[];
  storageVersion: string;
  shortNames: string[];
  categories: string[];
  status: boolean;
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
  extra: string[];
  builtin: boolean;
  /** version independent storage key, "group/plural" */
  key: string;
  /** field selectors beyond metadata.name / metadata.namespace */
  fieldSelectors: Set<string>;
  /** served through the registry but never stored (SelfSubjectAccessReview, UploadTokenRequest) */
  virtual: boolean;
  columns(version: string): PrinterColumn[];
  schema(version: string): JSONSchemaProps | undefined;
}

/** Versions sorted the way Kubernetes prefers them: GA > beta > alpha, then by number. */
export function versionPriority(v: string): number {
  const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
  if (!m) return 0;
  const major = Number(m[1]);
  const stage = m[2] === "alpha" ? 1 : m[2] === "beta" ? 2 : 3;
  return stage * 1_000_000 + major * 1000 + Number(m[3] ?? 0);
}

export function toServed(d: ResourceDefinition): ServedResource {
  const spec = d.crd.spec;
  const served = spec.versions.filter((v) => v.served);
  const storage = spec.versions.find((v) => v.storage) ?? served[0];
  const versions = [...served].sort((a, b) => versionPriority(b.name) - versionPriority(a.name)).map((v) => v.name);
  const first = storage ?? served[0];
  const fieldSelectors = new Set<string>(d.fieldSelectors ?? []);
  for (const v of served) for (const f of v.selectableFields ?? []) fieldSelectors.add(f.jsonPath.replace(/^\./, ""));
  const r: ServedResource = {
    def: d,
    group: spec.group,
    plural: spec.names.plural,
    singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
    kind: spec.names.kind,
    listKind: spec.names.listKind ?? `${spec.names.kind}List`,
    namespaced: spec.scope === "Namespaced",
    versions,
    storageVersion: storage?.name ?? versions[0] ?? "v1",
    shortNames: spec.names.shortNames ?? [],
    categories: spec.names.categories ?? [],
    status: !!first?.subresources?.status,
    extra: d.extraSubresources ?? [],
    builtin: d.builtin,
    key: `${spec.group}/${spec.names.plural}`,
    fieldSelectors,
    virtual: spec.group === "authorization.k8s.io" || spec.group === "upload.cdi.kubevirt.io",
    columns: (version) => spec.versions.find((v) => v.name === version)?.additionalPrinterColumns ?? [],
    schema: (version) => spec.versions.find((v) => v.name === version)?.schema?.openAPIV3Schema,
  };
  if (first?.subresources?.scale) r.scale = first.subresources.scale;
  return r;
}

export class Registry {
  #byKey = new Map<string, ServedResource>();
  #generation = 0;

  constructor(defs: ResourceDefinition[] = []) {
    for (const d of defs) this.add(d);
  }

  /** Bumped on every change; discovery and OpenAPI caches key on it. */
  get generation(): number {
    return this.#generation;
  }

  add(d: ResourceDefinition): ServedResource {
    const r = toServed(d);
    this.#byKey.set(r.key, r);
    this.#generation++;
    return r;
  }

  remove(group: string, plural: string): void {
    if (this.#byKey.delete(`${group}/${plural}`)) this.#generation++;
  }

  all(): ServedResource[] {
    return [...this.#byKey.values()];
  }

  /** The resource served at group/version/plural, if that version is served. */
  lookup(group: string, version: string, plural: string): ServedResource | undefined {
    const r = this.#byKey.get(`${group}/${plural}`);
    return r?.versions.includes(version) ? r : undefined;
  }

  byKey(key: string): ServedResource | undefined {
    return this.#byKey.get(key);
  }

  byKind(group: string, kind: string): ServedResource | undefined {
    for (const r of this.#byKey.values()) if (r.group === group && r.kind === kind) return r;
    return undefined;
  }

  /** group → versions (preferred first) */
  groups(): Map<string, string[]> {
    const out = new Map<string, Set<string>>();
    for (const r of this.#byKey.values()) {
      const s = out.get(r.group) ?? new Set<string>();
      for (const v of r.versions) s.add(v);
      out.set(r.group, s);
    }
    const sorted = new Map<string, string[]>();
    const names = [...out.keys()].sort((a, b) => groupOrder(a) - groupOrder(b) || a.localeCompare(b));
    for (const g of names) {
      sorted.set(
        g,
        [...(out.get(g) ?? [])].sort((a, b) => versionPriority(b) - versionPriority(a)),
      );
    }
    return sorted;
  }

  inGroupVersion(group: string, version: string): ServedResource[] {
    return this.all()
      .filter((r) => r.group === group && r.versions.includes(version))
      .sort((a, b) => a.plural.localeCompare(b.plural));
  }
}

function groupOrder(g: string): number {
  if (g === "") return 0;
  if (g.endsWith(".k8s.io") || !g.includes(".")) return 1;
  return 2;
}
