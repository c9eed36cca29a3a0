// Discovery documents: legacy (/api, /apis, /api/v1, /apis/G, /apis/G/V) and aggregated (apidiscovery.k8s.io/v2).
import type { Registry, ServedResource } from "../registry/resources.js";

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

function verbsOf(r: ServedResource): string[] {
  if (r.virtual) return ["create"];
  // as in Kubernetes, namespaces cannot be deleted as a collection
  if (r.key === "/namespaces") return VERBS.filter((v) => v !== "deletecollection");
  return VERBS;
}

interface SubInfo {
  name: string;
  kind: string;
  group: string;
  version: string;
  verbs: string[];
}

function subresources(r: ServedResource, version: string): SubInfo[] {
  const out: SubInfo[] = [];
  const g = r.group;
  if (r.status) out.push({ name: "status", kind: r.kind, group: g, version, verbs: ["get", "patch", "update"] });
  if (r.scale)
    out.push({ name: "scale", kind: "Scale", group: "autoscaling", version: "v1", verbs: ["get", "patch", "update"] });
  for (const e of r.extra) {
    if (e === "log") out.push({ name: "log", kind: "Pod", group: "", version: "v1", verbs: ["get"] });
    else if (e === "binding")
      out.push({ name: "binding", kind: "Binding", group: "", version: "v1", verbs: ["create"] });
    else if (e === "eviction")
      out.push({ name: "eviction", kind: "Eviction", group: "policy", version: "v1", verbs: ["create"] });
    else if (e === "finalize")
      out.push({ name: "finalize", kind: "Namespace", group: "", version: "v1", verbs: ["update"] });
    else out.push({ name: e, kind: r.kind, group: g, version, verbs: ["get"] });
  }
  return out;
}

export function apiResourceList(reg: Registry, group: string, version: string): Record<string, unknown> | undefined {
  const rs = reg.inGroupVersion(group, version);
  if (rs.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const r of rs) {
    const e: Record<string, unknown> = {
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: verbsOf(r),
    };
    if (r.shortNames.length) e.shortNames = r.shortNames;
    if (r.categories.length) e.categories = r.categories;
    resources.push(e);
    for (const s of subresources(r, version)) {
      const se: Record<string, unknown> = {
        name: `${r.plural}/${s.name}`,
        singularName: "",
        namespaced: r.namespaced,
        kind: s.kind,
        verbs: s.verbs,
      };
      // as kube-apiserver: another group-version is named in full (kubectl drain needs both for pods/eviction)
      if (s.group !== r.group || s.version !== version) {
        se.group = s.group;
        se.version = s.version;
      }
      resources.push(se);
    }
  }
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: group ? `${group}/${version}` : version,
    resources,
  };
}

export function apiVersions(): Record<string, unknown> {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "" }],
  };
}

function apiGroup(name: string, versions: string[]): Record<string, unknown> {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(reg: Registry): Record<string, unknown> {
  const groups: Record<string, unknown>[] = [];
  for (const [g, versions] of reg.groups()) if (g !== "") groups.push(apiGroup(g, versions));
  return { kind: "APIGroupList", apiVersion: "v1", groups };
}

export function apiGroupDoc(reg: Registry, group: string): Record<string, unknown> | undefined {
  const versions = reg.groups().get(group);
  if (!versions || group === "") return undefined;
  return { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, versions) };
}

function discoveryVersion(reg: Registry, group: string, version: string): Record<string, unknown> {
  const resources = reg.inGroupVersion(group, version).map((r) => {
    const e: Record<string, unknown> = {
      resource: r.plural,
      responseKind: { group, version, kind: r.kind },
      scope: r.namespaced ? "Namespaced" : "Cluster",
      singularResource: r.singular,
      verbs: verbsOf(r),
    };
    if (r.shortNames.length) e.shortNames = r.shortNames;
    if (r.categories.length) e.categories = r.categories;
    const subs = subresources(r, version);
    if (subs.length) {
      e.subresources = subs.map((s) => ({
        subresource: s.name,
        responseKind: { group: s.group, version: s.version, kind: s.kind },
        verbs: s.verbs,
      }));
    }
    return e;
  });
  return { version, resources, freshness: "Current" };
}

export const AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
export const AGGREGATED_CT_BETA = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/** `/api` (core: true) or `/apis` in the aggregated form. */
export function aggregatedDiscovery(reg: Registry, core: boolean, apiVersion: string): Record<string, unknown> {
  const items: Record<string, unknown>[] = [];
  for (const [g, versions] of reg.groups()) {
    if ((g === "") !== core) continue;
    const md: Record<string, unknown> = { creationTimestamp: null };
    if (g) md.name = g;
    items.push({ metadata: md, versions: versions.map((v) => discoveryVersion(reg, g, v)) });
  }
  return { kind: "APIGroupDiscoveryList", apiVersion, metadata: {}, items };
}
