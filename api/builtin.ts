// The built-in (non-CRD) kinds in the CRD shape the registry serves: core/v1, coordination.k8s.io/v1,
// autoscaling/v2, authorization.k8s.io/v1 and apiextensions.k8s.io/v1. Table columns follow kubectl's printers
// (k8s pkg/printers/internalversion); computed cells use ResourceDefinition.columns.
import type { TSchema } from "@sinclair/typebox";
import { CustomResourceDefinitionSchema } from "./apiextensions/v1/crd-schema.js";
import { ControllerRevision } from "./apps/v1/controllerrevision.js";
import { SelfSubjectAccessReview } from "./authorization/v1/ssar.js";
import { HorizontalPodAutoscaler } from "./autoscaling/v2/hpa.js";
import { UPLOAD_GROUP, UploadTokenRequest } from "./cdi/upload/v1beta1/uploadtokenrequest.js";
import { Lease } from "./coordination/v1/lease.js";
import {
  ConfigMap,
  Event,
  Namespace,
  Node,
  PersistentVolume,
  PersistentVolumeClaim,
  Secret,
  Service,
  ServiceAccount,
} from "./core/v1/kinds.js";
import { Pod } from "./core/v1/pod.js";
import { openAPISchema } from "./crds.js";
import type { ResourceDefinition, TableColumn } from "./meta/v1/crd.js";
import { CSIStorageCapacity, StorageClass } from "./storage/v1/storage.js";

type Obj = Record<string, unknown>;
function get(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Obj)[k];
  }
  return cur;
}
function arr(o: unknown, path: string): Obj[] {
  const v = get(o, path);
  return Array.isArray(v) ? (v as Obj[]) : [];
}
function orNone(v: unknown): unknown {
  return v === undefined || v === null || v === "" ? "<none>" : v;
}

const NAME: TableColumn = {
  name: "Name",
  type: "string",
  format: "name",
  description: "Name must be unique within a namespace.",
  cell: (o) => get(o, "metadata.name"),
};
const AGE: TableColumn = {
  name: "Age",
  type: "date",
  description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
  cell: (o) => get(o, "metadata.creationTimestamp"),
};

/** kubectl's pod STATUS cell (printPod), from the pod's phase, reason and container states. */
export function podStatusCell(pod: Obj): string {
  let reason = String(get(pod, "status.reason") ?? get(pod, "status.phase") ?? "Unknown");
  let initializing = false;
  const initStatuses = arr(pod, "status.initContainerStatuses");
  const initCount = arr(pod, "spec.initContainers").length;
  initStatuses.forEach((c, i) => {
    const term = get(c, "state.terminated") as Obj | undefined;
    const waiting = get(c, "state.waiting") as Obj | undefined;
    if (term && term.exitCode === 0) return;
    if (initializing) return;
    if (term) {
      reason = term.reason ? `Init:${String(term.reason)}` : `Init:ExitCode:${String(term.exitCode)}`;
    } else if (waiting?.reason && waiting.reason !== "PodInitializing") {
      reason = `Init:${String(waiting.reason)}`;
    } else {
      reason = `Init:${i}/${initCount}`;
    }
    initializing = true;
  });
  if (!initializing) {
    let hasRunning = false;
    const statuses = arr(pod, "status.containerStatuses");
    for (let i = statuses.length - 1; i >= 0; i--) {
      const c = statuses[i] as Obj;
      const waiting = get(c, "state.waiting") as Obj | undefined;
      const term = get(c, "state.terminated") as Obj | undefined;
      if (waiting?.reason) reason = String(waiting.reason);
      else if (term?.reason) reason = String(term.reason);
      else if (term) reason = term.signal ? `Signal:${String(term.signal)}` : `ExitCode:${String(term.exitCode)}`;
      else if (get(c, "state.running") && c.ready === true) hasRunning = true;
    }
    if (reason === "Completed" && hasRunning) {
      const ready = arr(pod, "status.conditions").some((c) => c.type === "Ready" && c.status === "True");
      reason = ready ? "Running" : "NotReady";
    }
  }
  if (get(pod, "metadata.deletionTimestamp")) {
    reason = get(pod, "status.reason") === "NodeLost" ? "Unknown" : "Terminating";
  }
  return reason;
}

const POD_COLUMNS: TableColumn[] = [
  NAME,
  {
    name: "Ready",
    type: "string",
    description: "The aggregate readiness state of this pod for accepting traffic.",
    cell: (o) => {
      const ready = arr(o, "status.containerStatuses").filter((c) => c.ready === true).length;
      return `${ready}/${arr(o, "spec.containers").length}`;
    },
  },
  {
    name: "Status",
    type: "string",
    description: "The aggregate status of the containers in this pod.",
    cell: (o) => podStatusCell(o),
  },
  {
    name: "Restarts",
    type: "string",
    description: "The number of times the containers in this pod have been restarted.",
    cell: (o) => String(arr(o, "status.containerStatuses").reduce((n, c) => n + Number(c.restartCount ?? 0), 0)),
  },
  AGE,
  { name: "IP", type: "string", priority: 1, description: "IP address", cell: (o) => orNone(get(o, "status.podIP")) },
  { name: "Node", type: "string", priority: 1, description: "Node name", cell: (o) => orNone(get(o, "spec.nodeName")) },
  {
    name: "Nominated Node",
    type: "string",
    priority: 1,
    description: "Nominated node",
    cell: (o) => orNone(get(o, "status.nominatedNodeName")),
  },
  {
    name: "Readiness Gates",
    type: "string",
    priority: 1,
    description: "Readiness gates",
    cell: (o) => {
      const gates = arr(o, "spec.readinessGates");
      if (gates.length === 0) return "<none>";
      const conds = arr(o, "status.conditions");
      const ok = gates.filter((g) => conds.some((c) => c.type === g.conditionType && c.status === "True")).length;
      return `${ok}/${gates.length}`;
    },
  },
];

/** kubectl's node STATUS cell: Ready/NotReady/Unknown, plus SchedulingDisabled when cordoned. */
export function nodeStatusCell(node: Obj): string {
  const ready = arr(node, "status.conditions").find((c) => c.type === "Ready");
  const parts = [ready ? (ready.status === "True" ? "Ready" : "NotReady") : "Unknown"];
  if (get(node, "spec.unschedulable") === true) parts.push("SchedulingDisabled");
  return parts.join(",");
}

function nodeRoles(node: Obj): string {
  const labels = (get(node, "metadata.labels") ?? {}) as Record<string, string>;
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith("node-role.kubernetes.io/")) roles.add(k.slice("node-role.kubernetes.io/".length));
    else if (k === "kubernetes.io/role" && v) roles.add(v);
  }
  return roles.size ? [...roles].sort().join(",") : "<none>";
}

function nodeAddress(node: Obj, type: string): unknown {
  return orNone(arr(node, "status.addresses").find((a) => a.type === type)?.address);
}

const NODE_COLUMNS: TableColumn[] = [
  NAME,
  { name: "Status", type: "string", description: "The status of the node", cell: (o) => nodeStatusCell(o) },
  { name: "Roles", type: "string", description: "The roles of the node", cell: (o) => nodeRoles(o) },
  AGE,
  {
    name: "Version",
    type: "string",
    description: "Kubelet Version reported by the node.",
    cell: (o) => orNone(get(o, "status.nodeInfo.kubeletVersion")),
  },
  { name: "Internal-IP", type: "string", priority: 1, cell: (o) => nodeAddress(o, "InternalIP") },
  { name: "External-IP", type: "string", priority: 1, cell: (o) => nodeAddress(o, "ExternalIP") },
  { name: "OS-Image", type: "string", priority: 1, cell: (o) => orNone(get(o, "status.nodeInfo.osImage")) },
  {
    name: "Kernel-Version",
    type: "string",
    priority: 1,
    cell: (o) => orNone(get(o, "status.nodeInfo.kernelVersion")),
  },
  {
    name: "Container-Runtime",
    type: "string",
    priority: 1,
    cell: (o) => orNone(get(o, "status.nodeInfo.containerRuntimeVersion")),
  },
];

const EVENT_COLUMNS: TableColumn[] = [
  {
    name: "Last Seen",
    type: "date",
    cell: (o) => get(o, "lastTimestamp") ?? get(o, "eventTime") ?? get(o, "firstTimestamp"),
  },
  { name: "Type", type: "string", cell: (o) => get(o, "type") },
  { name: "Reason", type: "string", cell: (o) => get(o, "reason") },
  {
    name: "Object",
    type: "string",
    cell: (o) =>
      `${String(get(o, "involvedObject.kind") ?? "").toLowerCase()}/${String(get(o, "involvedObject.name") ?? "")}`,
  },
  { name: "Message", type: "string", cell: (o) => String(get(o, "message") ?? "").trim() },
  { name: "Subobject", type: "string", priority: 1, cell: (o) => get(o, "involvedObject.fieldPath") ?? "" },
  {
    name: "Source",
    type: "string",
    priority: 1,
    cell: (o) => {
      const c = get(o, "source.component") ?? get(o, "reportingComponent") ?? "";
      const h = get(o, "source.host");
      return h ? `${String(c)}, ${String(h)}` : String(c);
    },
  },
  { name: "First Seen", type: "date", priority: 1, cell: (o) => get(o, "firstTimestamp") ?? get(o, "eventTime") },
  { name: "Count", type: "integer", priority: 1, cell: (o) => get(o, "count") ?? 1 },
  { ...NAME, priority: 1 },
];

const ACCESS_MODES: Record<string, string> = {
  ReadWriteOnce: "RWO",
  ReadOnlyMany: "ROX",
  ReadWriteMany: "RWX",
  ReadWriteOncePod: "RWOP",
};
function accessModes(o: Obj, path: string): string {
  return arr(o, path)
    .map((m) => ACCESS_MODES[String(m)] ?? String(m))
    .join(",");
}
function count(o: Obj, path: string): number {
  const v = get(o, path);
  return v && typeof v === "object" ? Object.keys(v).length : 0;
}

const PVC_COLUMNS: TableColumn[] = [
  NAME,
  { name: "Status", type: "string", cell: (o) => get(o, "status.phase") },
  { name: "Volume", type: "string", cell: (o) => get(o, "spec.volumeName") ?? "" },
  { name: "Capacity", type: "string", cell: (o) => get(o, "status.capacity.storage") ?? "" },
  { name: "Access Modes", type: "string", cell: (o) => accessModes(o, "status.accessModes") },
  { name: "StorageClass", type: "string", cell: (o) => orNone(get(o, "spec.storageClassName")) },
  { name: "VolumeAttributesClass", type: "string", cell: (o) => orNone(get(o, "spec.volumeAttributesClassName")) },
  AGE,
  { name: "VolumeMode", type: "string", priority: 1, cell: (o) => get(o, "spec.volumeMode") ?? "Filesystem" },
];

const PV_COLUMNS: TableColumn[] = [
  NAME,
  { name: "Capacity", type: "string", cell: (o) => get(o, "spec.capacity.storage") ?? "" },
  { name: "Access Modes", type: "string", cell: (o) => accessModes(o, "spec.accessModes") },
  { name: "Reclaim Policy", type: "string", cell: (o) => get(o, "spec.persistentVolumeReclaimPolicy") ?? "" },
  { name: "Status", type: "string", cell: (o) => get(o, "status.phase") ?? "" },
  {
    name: "Claim",
    type: "string",
    cell: (o) => {
      const ns = get(o, "spec.claimRef.namespace");
      const n = get(o, "spec.claimRef.name");
      return n ? `${String(ns ?? "")}/${String(n)}` : "";
    },
  },
  { name: "StorageClass", type: "string", cell: (o) => get(o, "spec.storageClassName") ?? "" },
  { name: "VolumeAttributesClass", type: "string", cell: (o) => orNone(get(o, "spec.volumeAttributesClassName")) },
  { name: "Reason", type: "string", cell: (o) => get(o, "status.reason") ?? "" },
  AGE,
  { name: "VolumeMode", type: "string", priority: 1, cell: (o) => get(o, "spec.volumeMode") ?? "Filesystem" },
];

/** kubectl's StorageClass NAME cell: "(default)" follows the default class's name. */
function storageClassName(o: Obj): string {
  const name = String(get(o, "metadata.name") ?? "");
  const d = get(o, "metadata.annotations") as Record<string, string> | undefined;
  const isDefault =
    d?.["storageclass.kubernetes.io/is-default-class"] ?? d?.["storageclass.beta.kubernetes.io/is-default-class"];
  return isDefault === "true" ? `${name} (default)` : name;
}

const STORAGE_CLASS_COLUMNS: TableColumn[] = [
  { ...NAME, cell: (o) => storageClassName(o) },
  { name: "Provisioner", type: "string", cell: (o) => get(o, "provisioner") },
  { name: "ReclaimPolicy", type: "string", cell: (o) => get(o, "reclaimPolicy") ?? "Delete" },
  { name: "VolumeBindingMode", type: "string", cell: (o) => get(o, "volumeBindingMode") ?? "Immediate" },
  { name: "AllowVolumeExpansion", type: "string", cell: (o) => String(get(o, "allowVolumeExpansion") ?? false) },
  AGE,
];

function servicePorts(o: Obj): string {
  const ports = arr(o, "spec.ports").map((p) => {
    const node = p.nodePort ? `:${String(p.nodePort)}` : "";
    return `${String(p.port)}${node}/${String(p.protocol ?? "TCP")}`;
  });
  return ports.length ? ports.join(",") : "<none>";
}

const SERVICE_COLUMNS: TableColumn[] = [
  NAME,
  { name: "Type", type: "string", cell: (o) => get(o, "spec.type") ?? "ClusterIP" },
  { name: "Cluster-IP", type: "string", cell: (o) => orNone(get(o, "spec.clusterIP")) },
  {
    name: "External-IP",
    type: "string",
    cell: (o) => {
      const ips = [
        ...((get(o, "spec.externalIPs") as string[] | undefined) ?? []),
        ...arr(o, "status.loadBalancer.ingress").map((i) => String(i.ip ?? i.hostname ?? "")),
      ];
      return ips.length ? ips.join(",") : get(o, "spec.type") === "LoadBalancer" ? "<pending>" : "<none>";
    },
  },
  { name: "Port(s)", type: "string", cell: (o) => servicePorts(o) },
  AGE,
  {
    name: "Selector",
    type: "string",
    priority: 1,
    cell: (o) => {
      const sel = (get(o, "spec.selector") ?? {}) as Record<string, string>;
      const parts = Object.entries(sel).map(([k, v]) => `${k}=${v}`);
      return parts.length ? parts.sort().join(",") : "<none>";
    },
  },
];

interface Builtin {
  group: string;
  version: string;
  kind: string;
  plural: string;
  shortNames?: string[];
  categories?: string[];
  scope?: "Namespaced" | "Cluster";
  schema: TSchema;
  status?: boolean;
  extraSubresources?: string[];
  /**
   * Field selectors beyond metadata.name/namespace, exactly Kubernetes' (pkg/apis/core/v1 conversion.go): the one list
   * (apiserver/selectors derives getters and messages from it; a core kind with a list has its own conversion).
   */
  fieldSelectors?: string[];
  columns?: TableColumn[];
}

const BUILTINS: Builtin[] = [
  {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    shortNames: ["ns"],
    scope: "Cluster",
    schema: Namespace,
    status: true,
    extraSubresources: ["finalize"],
    fieldSelectors: ["status.phase"],
    columns: [NAME, { name: "Status", type: "string", cell: (o) => get(o, "status.phase") }, AGE],
  },
  {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    shortNames: ["no"],
    scope: "Cluster",
    schema: Node,
    status: true,
    fieldSelectors: ["spec.unschedulable"],
    columns: NODE_COLUMNS,
  },
  {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    shortNames: ["po"],
    categories: ["all"],
    schema: Pod,
    status: true,
    extraSubresources: ["binding", "eviction", "log"],
    fieldSelectors: [
      "spec.nodeName",
      "spec.restartPolicy",
      "spec.schedulerName",
      "spec.serviceAccountName",
      "spec.hostNetwork",
      "status.phase",
      "status.podIP",
      "status.podIPs",
      "status.nominatedNodeName",
    ],
    columns: POD_COLUMNS,
  },
  {
    group: "",
    version: "v1",
    kind: "PersistentVolumeClaim",
    plural: "persistentvolumeclaims",
    shortNames: ["pvc"],
    schema: PersistentVolumeClaim,
    status: true,
    columns: PVC_COLUMNS,
  },
  {
    group: "",
    version: "v1",
    kind: "PersistentVolume",
    plural: "persistentvolumes",
    shortNames: ["pv"],
    scope: "Cluster",
    schema: PersistentVolume,
    status: true,
    columns: PV_COLUMNS,
  },
  {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    shortNames: ["cm"],
    schema: ConfigMap,
    columns: [NAME, { name: "Data", type: "integer", cell: (o) => count(o, "data") + count(o, "binaryData") }, AGE],
  },
  {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    schema: Secret,
    fieldSelectors: ["type"],
    columns: [
      NAME,
      { name: "Type", type: "string", cell: (o) => get(o, "type") ?? "Opaque" },
      { name: "Data", type: "integer", cell: (o) => count(o, "data") },
      AGE,
    ],
  },
  {
    group: "",
    version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    shortNames: ["sa"],
    schema: ServiceAccount,
    columns: [NAME, { name: "Secrets", type: "integer", cell: (o) => arr(o, "secrets").length }, AGE],
  },
  {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    shortNames: ["svc"],
    categories: ["all"],
    schema: Service,
    status: true,
    fieldSelectors: ["spec.clusterIP", "spec.type"],
    columns: SERVICE_COLUMNS,
  },
  {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    shortNames: ["ev"],
    schema: Event,
    fieldSelectors: [
      "involvedObject.kind",
      "involvedObject.namespace",
      "involvedObject.name",
      "involvedObject.uid",
      "involvedObject.apiVersion",
      "involvedObject.resourceVersion",
      "involvedObject.fieldPath",
      "reason",
      "reportingComponent",
      "source",
      "type",
    ],
    columns: EVENT_COLUMNS,
  },
  {
    group: "storage.k8s.io",
    version: "v1",
    kind: "StorageClass",
    plural: "storageclasses",
    shortNames: ["sc"],
    scope: "Cluster",
    schema: StorageClass,
    columns: STORAGE_CLASS_COLUMNS,
  },
  {
    group: "storage.k8s.io",
    version: "v1",
    kind: "CSIStorageCapacity",
    plural: "csistoragecapacities",
    schema: CSIStorageCapacity,
    columns: [
      NAME,
      { name: "StorageClassName", type: "string", cell: (o) => get(o, "storageClassName") ?? "" },
      { name: "Capacity", type: "string", cell: (o) => get(o, "capacity") ?? "" },
      AGE,
    ],
  },
  {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    schema: Lease,
    columns: [NAME, { name: "Holder", type: "string", cell: (o) => get(o, "spec.holderIdentity") ?? "" }, AGE],
  },
  {
    group: "apps",
    version: "v1",
    kind: "ControllerRevision",
    plural: "controllerrevisions",
    schema: ControllerRevision,
    // kubectl's printer: NAME CONTROLLER REVISION AGE
    columns: [
      NAME,
      {
        name: "Controller",
        type: "string",
        description: "The controller that owns this revision.",
        cell: (o) => {
          const ref = ((get(o, "metadata.ownerReferences") ?? []) as Obj[]).find((r) => r.controller === true);
          if (!ref) return "<none>";
          const [group] = String(ref.apiVersion ?? "")
            .split("/")
            .reverse()
            .slice(1);
          return `${String(ref.kind ?? "").toLowerCase()}${group ? `.${group}` : ""}/${String(ref.name ?? "")}`;
        },
      },
      { name: "Revision", type: "integer", description: "The revision number.", cell: (o) => get(o, "revision") },
      AGE,
    ],
  },
  {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    shortNames: ["hpa"],
    categories: ["all"],
    schema: HorizontalPodAutoscaler,
    status: true,
    columns: [
      NAME,
      {
        name: "Reference",
        type: "string",
        cell: (o) => `${String(get(o, "spec.scaleTargetRef.kind"))}/${String(get(o, "spec.scaleTargetRef.name"))}`,
      },
      {
        name: "Targets",
        type: "string",
        cell: (o) => (arr(o, "spec.metrics").length ? `${arr(o, "spec.metrics").length} metric(s)` : "<none>"),
      },
      { name: "MinPods", type: "string", cell: (o) => String(get(o, "spec.minReplicas") ?? 1) },
      { name: "MaxPods", type: "integer", cell: (o) => get(o, "spec.maxReplicas") },
      { name: "Replicas", type: "integer", cell: (o) => get(o, "status.currentReplicas") ?? 0 },
      AGE,
    ],
  },
  {
    group: "authorization.k8s.io",
    version: "v1",
    kind: "SelfSubjectAccessReview",
    plural: "selfsubjectaccessreviews",
    scope: "Cluster",
    schema: SelfSubjectAccessReview,
  },
  {
    // CDI's cdi-apiserver serves it; here the API server does (a signed token, nothing stored)
    group: UPLOAD_GROUP,
    version: "v1beta1",
    kind: "UploadTokenRequest",
    plural: "uploadtokenrequests",
    schema: UploadTokenRequest,
  },
  {
    group: "apiextensions.k8s.io",
    version: "v1",
    kind: "CustomResourceDefinition",
    plural: "customresourcedefinitions",
    shortNames: ["crd", "crds"],
    scope: "Cluster",
    schema: CustomResourceDefinitionSchema,
    status: true,
    columns: [NAME, { name: "Created At", type: "date", cell: (o) => get(o, "metadata.creationTimestamp") }],
  },
];

function toDefinition(b: Builtin): ResourceDefinition {
  const def: ResourceDefinition = {
    builtin: true,
    crd: {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: b.group ? `${b.plural}.${b.group}` : b.plural },
      spec: {
        group: b.group,
        names: {
          kind: b.kind,
          listKind: `${b.kind}List`,
          plural: b.plural,
          singular: b.kind.toLowerCase(),
          ...(b.shortNames ? { shortNames: [...b.shortNames] } : {}),
          ...(b.categories ? { categories: [...b.categories] } : {}),
        },
        scope: b.scope ?? "Namespaced",
        versions: [
          {
            name: b.version,
            served: true,
            storage: true,
            schema: { openAPIV3Schema: openAPISchema(b.schema) },
            ...(b.status ? { subresources: { status: {} } } : {}),
          },
        ],
      },
    },
  };
  if (b.extraSubresources) def.extraSubresources = [...b.extraSubresources];
  if (b.fieldSelectors) def.fieldSelectors = [...b.fieldSelectors];
  if (b.columns) def.columns = b.columns;
  return def;
}

/** The built-in kinds (Pod, Node, Namespace, ..., Lease, HPA, SelfSubjectAccessReview, CRD) as ResourceDefinitions. */
export function builtinDefinitions(): ResourceDefinition[] {
  return BUILTINS.map(toDefinition);
}
