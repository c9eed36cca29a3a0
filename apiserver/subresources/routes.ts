// Parsing of virt-api's subresource paths (subresources.kubevirt.io), kept pure so it is table-tested.
//   /apis/subresources.kubevirt.io/{v1|v1alpha3}/namespaces/{ns}/virtualmachines/{name}/{verb}
//   /apis/subresources.kubevirt.io/{v1|v1alpha3}/namespaces/{ns}/virtualmachineinstances/{name}/{verb}
//   /apis/subresources.kubevirt.io/{v1|v1alpha3}/{version|healthz}

export const SUBRESOURCE_GROUP = "subresources.kubevirt.io";
export const SUBRESOURCE_VERSIONS = ["v1", "v1alpha3"] as const;

export const VM_VERBS = ["start", "stop", "restart", "migrate"] as const;
export const VMI_VERBS = ["pause", "unpause", "softreboot", "reset", "console", "vnc", "guestosinfo"] as const;
export type VmVerb = (typeof VM_VERBS)[number];
export type VmiVerb = (typeof VMI_VERBS)[number];

export type Route =
  | { kind: "vm"; namespace: string; name: string; verb: VmVerb }
  | { kind: "vmi"; namespace: string; name: string; verb: VmiVerb }
  | { kind: "version" }
  | { kind: "healthz" }
  | { kind: "discovery"; version: string }
  | { kind: "unknown"; reason: string };

// DNS-1123 subdomain: what kube-apiserver accepts as a namespace or object name.
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function isSubresourcePath(pathname: string): boolean {
  return pathname === `/apis/${SUBRESOURCE_GROUP}` || pathname.startsWith(`/apis/${SUBRESOURCE_GROUP}/`);
}

export function parseRoute(pathname: string): Route {
  const parts = pathname.split("/").filter((p) => p !== "");
  // ["apis", group, version, ...]
  const version = parts[2];
  if (parts[0] !== "apis" || parts[1] !== SUBRESOURCE_GROUP || version === undefined) {
    return { kind: "unknown", reason: `the server could not find the requested resource` };
  }
  if (!(SUBRESOURCE_VERSIONS as readonly string[]).includes(version)) {
    return { kind: "unknown", reason: `version "${version}" of ${SUBRESOURCE_GROUP} is not served` };
  }
  const rest = parts.slice(3);
  if (rest.length === 0) return { kind: "discovery", version };
  if (rest.length === 1 && rest[0] === "version") return { kind: "version" };
  if (rest.length === 1 && rest[0] === "healthz") return { kind: "healthz" };
  const [nsWord, namespace, resource, rawName, verb, ...extra] = rest;
  if (nsWord !== "namespaces" || namespace === undefined || resource === undefined || rawName === undefined) {
    return { kind: "unknown", reason: "the server could not find the requested resource" };
  }
  if (verb === undefined || extra.length > 0) {
    return { kind: "unknown", reason: "the server could not find the requested resource" };
  }
  let name: string;
  try {
    name = decodeURIComponent(rawName);
  } catch {
    return { kind: "unknown", reason: "malformed name in path" };
  }
  if (!NAME.test(namespace) || !NAME.test(name)) {
    return { kind: "unknown", reason: "the server could not find the requested resource" };
  }
  if (resource === "virtualmachines" && (VM_VERBS as readonly string[]).includes(verb)) {
    return { kind: "vm", namespace, name, verb: verb as VmVerb };
  }
  if (resource === "virtualmachineinstances" && (VMI_VERBS as readonly string[]).includes(verb)) {
    return { kind: "vmi", namespace, name, verb: verb as VmiVerb };
  }
  return { kind: "unknown", reason: `the server could not find the requested resource (${resource}/${verb})` };
}

/** The APIResourceList virt-api serves for discovery of its group. */
export function discoveryDocument(version: string): Record<string, unknown> {
  const vm = VM_VERBS.map((v) => ({
    name: `virtualmachines/${v}`,
    singularName: "",
    namespaced: true,
    kind: "VirtualMachine",
    verbs: ["update"],
  }));
  const vmi = VMI_VERBS.map((v) => ({
    name: `virtualmachineinstances/${v}`,
    singularName: "",
    namespaced: true,
    kind: "VirtualMachineInstance",
    verbs: v === "console" || v === "vnc" || v === "guestosinfo" ? ["get"] : ["update"],
  }));
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: `${SUBRESOURCE_GROUP}/${version}`,
    resources: [...vm, ...vmi],
  };
}
