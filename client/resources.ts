// Which resource a request names: group/version/resource plus scope. The typed helpers below cover the kinds the
// controllers, node agent and virtctl use; anything else is a ResourceRef literal.

export interface ResourceRef {
  group: string;
  version: string;
  resource: string;
  namespaced: boolean;
  kind: string;
}

export const resources = {
  vms: { group: "kubevirt.io", version: "v1", resource: "virtualmachines", namespaced: true, kind: "VirtualMachine" },
  vmis: {
    group: "kubevirt.io",
    version: "v1",
    resource: "virtualmachineinstances",
    namespaced: true,
    kind: "VirtualMachineInstance",
  },
  vmirs: {
    group: "kubevirt.io",
    version: "v1",
    resource: "virtualmachineinstancereplicasets",
    namespaced: true,
    kind: "VirtualMachineInstanceReplicaSet",
  },
  vmims: {
    group: "kubevirt.io",
    version: "v1",
    resource: "virtualmachineinstancemigrations",
    namespaced: true,
    kind: "VirtualMachineInstanceMigration",
  },
  migrationpolicies: {
    group: "migrations.kubevirt.io",
    version: "v1alpha1",
    resource: "migrationpolicies",
    namespaced: false,
    kind: "MigrationPolicy",
  },
  vmpools: {
    group: "pool.kubevirt.io",
    version: "v1beta1",
    resource: "virtualmachinepools",
    namespaced: true,
    kind: "VirtualMachinePool",
  },
  kubevirts: { group: "kubevirt.io", version: "v1", resource: "kubevirts", namespaced: true, kind: "KubeVirt" },
  pods: { group: "", version: "v1", resource: "pods", namespaced: true, kind: "Pod" },
  nodes: { group: "", version: "v1", resource: "nodes", namespaced: false, kind: "Node" },
  events: { group: "", version: "v1", resource: "events", namespaced: true, kind: "Event" },
  namespaces: { group: "", version: "v1", resource: "namespaces", namespaced: false, kind: "Namespace" },
  leases: { group: "coordination.k8s.io", version: "v1", resource: "leases", namespaced: true, kind: "Lease" },
  configMaps: { group: "", version: "v1", resource: "configmaps", namespaced: true, kind: "ConfigMap" },
  secrets: { group: "", version: "v1", resource: "secrets", namespaced: true, kind: "Secret" },
  pvcs: {
    group: "",
    version: "v1",
    resource: "persistentvolumeclaims",
    namespaced: true,
    kind: "PersistentVolumeClaim",
  },
  pvs: { group: "", version: "v1", resource: "persistentvolumes", namespaced: false, kind: "PersistentVolume" },
  storageclasses: {
    group: "storage.k8s.io",
    version: "v1",
    resource: "storageclasses",
    namespaced: false,
    kind: "StorageClass",
  },
  datavolumes: {
    group: "cdi.kubevirt.io",
    version: "v1beta1",
    resource: "datavolumes",
    namespaced: true,
    kind: "DataVolume",
  },
  csistoragecapacities: {
    group: "storage.k8s.io",
    version: "v1",
    resource: "csistoragecapacities",
    namespaced: true,
    kind: "CSIStorageCapacity",
  },
  cdiconfigs: {
    group: "cdi.kubevirt.io",
    version: "v1beta1",
    resource: "cdiconfigs",
    namespaced: false,
    kind: "CDIConfig",
  },
} as const satisfies Record<string, ResourceRef>;

/** The subresource API group virt-api serves (start/stop/console ...). */
export const SUBRESOURCE_GROUP = "subresources.kubevirt.io";

export function apiVersionOf(ref: ResourceRef): string {
  return ref.group ? `${ref.group}/${ref.version}` : ref.version;
}

/** The collection path: /api/v1/namespaces/NS/pods or /apis/G/V/RES (namespace omitted for cluster scope/all). */
export function collectionPath(ref: ResourceRef, namespace?: string): string {
  const base = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  const ns = ref.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${base}${ns}/${ref.resource}`;
}

export function objectPath(
  ref: ResourceRef,
  namespace: string | undefined,
  name: string,
  subresource?: string,
): string {
  if (!name) throw new Error(`${ref.resource}: a name is required`);
  const sub = subresource ? `/${subresource}` : "";
  return `${collectionPath(ref, namespace)}/${encodeURIComponent(name)}${sub}`;
}

/** namespace/name (or name for cluster-scoped objects), the key the caches and work queues use. */
export function keyOf(o: { metadata: { namespace?: string; name?: string } }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata.name ?? "");
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
