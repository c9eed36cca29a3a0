// Served kinds until the schemas engineer's `builtinDefinitions()` / `kubevirtCrds()` land: CRD-shaped definitions
// with permissive schemas (closed at the top level, open below spec/status) and KubeVirt's printer columns.
import * as api from "../../api/index.js";
import type {
  CrdVersion,
  CustomResourceDefinition,
  JSONSchemaProps,
  PrinterColumn,
  ResourceDefinition,
} from "../../api/meta/v1/crd.js";

interface DefOpts {
  group: string;
  versions: string[];
  kind: string;
  plural: string;
  shortNames?: string[];
  categories?: string[];
  scope?: "Namespaced" | "Cluster";
  status?: boolean;
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
  columns?: PrinterColumn[];
  builtin?: boolean;
  extra?: string[];
  fieldSelectors?: string[];
  /** top-level properties besides apiVersion/kind/metadata; default spec + status */
  top?: string[];
  /** the whole object is open (kinds with many top-level fields) */
  open?: boolean;
}

const age: PrinterColumn = { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" };

function openObject(description: string): JSONSchemaProps {
  return { type: "object", description, "x-kubernetes-preserve-unknown-fields": true };
}

export function permissiveSchema(kind: string, top: string[], open: boolean): JSONSchemaProps {
  const properties: Record<string, JSONSchemaProps> = {
    apiVersion: {
      type: "string",
      description: "APIVersion defines the versioned schema of this representation of an object.",
    },
    kind: {
      type: "string",
      description: "Kind is a string value representing the REST resource this object represents.",
    },
    metadata: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
  };
  for (const t of top) {
    properties[t] =
      t === "spec"
        ? openObject(`${kind}Spec describes the desired state of the ${kind}.`)
        : t === "status"
          ? openObject(`${kind}Status represents the observed state of the ${kind}.`)
          : openObject(`${t} of the ${kind}.`);
  }
  const schema: JSONSchemaProps = {
    type: "object",
    description: `${kind} is the Schema for the ${kind} API.`,
    properties,
  };
  if (open) schema["x-kubernetes-preserve-unknown-fields"] = true;
  return schema;
}

/** The project's typed schemas (api/), where they exist; the rest stay permissive until api/ covers them. */
function typedSchema(kind: string): JSONSchemaProps | undefined {
  const schemas: Record<string, unknown> = {
    VirtualMachine: api.VirtualMachine,
    VirtualMachineInstance: api.VirtualMachineInstance,
    VirtualMachineInstanceReplicaSet: api.VirtualMachineInstanceReplicaSet,
    VirtualMachineInstanceMigration: api.VirtualMachineInstanceMigration,
    DataVolume: api.DataVolume,
    Pod: api.Pod,
    Node: api.Node,
    Namespace: api.Namespace,
    PersistentVolumeClaim: api.PersistentVolumeClaim,
    PersistentVolume: api.PersistentVolume,
    ConfigMap: api.ConfigMap,
    Secret: api.Secret,
    ServiceAccount: api.ServiceAccount,
    Service: api.Service,
    Event: api.Event,
  };
  const s = schemas[kind];
  return s ? (JSON.parse(JSON.stringify(s)) as JSONSchemaProps) : undefined;
}

export function def(o: DefOpts): ResourceDefinition {
  const singular = o.kind.toLowerCase();
  const typed = typedSchema(o.kind);
  const versions: CrdVersion[] = o.versions.map((v, i) => {
    const ver: CrdVersion = {
      name: v,
      served: true,
      storage: i === 0,
      schema: { openAPIV3Schema: typed ?? permissiveSchema(o.kind, o.top ?? ["spec", "status"], o.open ?? false) },
    };
    if (o.status || o.scale) {
      ver.subresources = {};
      if (o.status) ver.subresources.status = {};
      if (o.scale) ver.subresources.scale = o.scale;
    }
    if (o.columns) ver.additionalPrinterColumns = o.columns;
    return ver;
  });
  const names: CustomResourceDefinition["spec"]["names"] = {
    kind: o.kind,
    listKind: `${o.kind}List`,
    plural: o.plural,
    singular,
  };
  if (o.shortNames) names.shortNames = o.shortNames;
  if (o.categories) names.categories = o.categories;
  const crd: CustomResourceDefinition = {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: o.group ? `${o.plural}.${o.group}` : o.plural },
    spec: { group: o.group, names, scope: o.scope ?? "Namespaced", versions },
  };
  const rd: ResourceDefinition = { crd, builtin: o.builtin ?? false };
  if (o.extra) rd.extraSubresources = o.extra;
  if (o.fieldSelectors) rd.fieldSelectors = o.fieldSelectors;
  return rd;
}

function cond(type: string): string {
  return `.status.conditions[?(@.type=='${type}')].status`;
}

/** The kubevirt, snapshot, cdi and pool kinds with KubeVirt's shortNames, subresources and printer columns. */
export function bootstrapKubevirtDefinitions(): ResourceDefinition[] {
  const kv = ["v1", "v1alpha3"];
  const replicas = (p: string): PrinterColumn[] => [
    { name: "Desired", type: "integer", jsonPath: ".spec.replicas", description: `Number of desired ${p}` },
    {
      name: "Current",
      type: "integer",
      jsonPath: ".status.replicas",
      description: `Number of managed and not final or deleted ${p}`,
    },
    {
      name: "Ready",
      type: "integer",
      jsonPath: ".status.readyReplicas",
      description: `Number of managed ${p} which are ready to receive traffic`,
    },
    age,
  ];
  return [
    def({
      group: "kubevirt.io",
      versions: kv,
      kind: "VirtualMachine",
      plural: "virtualmachines",
      shortNames: ["vm", "vms"],
      categories: ["all"],
      status: true,
      columns: [
        age,
        { name: "Status", type: "string", jsonPath: ".status.printableStatus", description: "Human Readable Status" },
        { name: "Ready", type: "string", jsonPath: cond("Ready") },
      ],
    }),
    def({
      group: "kubevirt.io",
      versions: kv,
      kind: "VirtualMachineInstance",
      plural: "virtualmachineinstances",
      shortNames: ["vmi", "vmis"],
      categories: ["all"],
      columns: [
        age,
        { name: "Phase", type: "string", jsonPath: ".status.phase" },
        { name: "IP", type: "string", jsonPath: ".status.interfaces[0].ipAddress" },
        { name: "NodeName", type: "string", jsonPath: ".status.nodeName" },
        { name: "Ready", type: "string", jsonPath: cond("Ready") },
        { name: "Live-Migratable", type: "string", jsonPath: cond("LiveMigratable"), priority: 1 },
        { name: "Paused", type: "string", jsonPath: cond("Paused"), priority: 1 },
      ],
    }),
    def({
      group: "kubevirt.io",
      versions: kv,
      kind: "VirtualMachineInstanceReplicaSet",
      plural: "virtualmachineinstancereplicasets",
      shortNames: ["vmirs", "vmirss"],
      categories: ["all"],
      status: true,
      scale: {
        specReplicasPath: ".spec.replicas",
        statusReplicasPath: ".status.replicas",
        labelSelectorPath: ".status.labelSelector",
      },
      columns: replicas("VirtualMachineInstance"),
    }),
    def({
      group: "kubevirt.io",
      versions: kv,
      kind: "VirtualMachineInstanceMigration",
      plural: "virtualmachineinstancemigrations",
      shortNames: ["vmim", "vmims"],
      categories: ["all"],
      status: true,
      columns: [
        {
          name: "Phase",
          type: "string",
          jsonPath: ".status.phase",
          description: "The current phase of VM instance migration",
        },
        {
          name: "VMI",
          type: "string",
          jsonPath: ".spec.vmiName",
          description: "The name of the VMI to perform the migration on",
        },
      ],
    }),
    def({
      group: "pool.kubevirt.io",
      versions: ["v1beta1", "v1alpha1"],
      kind: "VirtualMachinePool",
      plural: "virtualmachinepools",
      shortNames: ["vmpool", "vmpools"],
      categories: ["all"],
      status: true,
      scale: {
        specReplicasPath: ".spec.replicas",
        statusReplicasPath: ".status.replicas",
        labelSelectorPath: ".status.labelSelector",
      },
      columns: replicas("VirtualMachine"),
    }),
    def({
      group: "snapshot.kubevirt.io",
      versions: ["v1beta1", "v1alpha1"],
      kind: "VirtualMachineSnapshot",
      plural: "virtualmachinesnapshots",
      shortNames: ["vmsnapshot", "vmsnapshots"],
      categories: ["all"],
      status: true,
      columns: [
        { name: "SourceKind", type: "string", jsonPath: ".spec.source.kind" },
        { name: "SourceName", type: "string", jsonPath: ".spec.source.name" },
        { name: "Phase", type: "string", jsonPath: ".status.phase" },
        { name: "ReadyToUse", type: "boolean", jsonPath: ".status.readyToUse" },
        { name: "CreationTime", type: "date", jsonPath: ".status.creationTime" },
        { name: "Error", type: "string", jsonPath: ".status.error.message" },
      ],
    }),
    def({
      group: "snapshot.kubevirt.io",
      versions: ["v1beta1", "v1alpha1"],
      kind: "VirtualMachineSnapshotContent",
      plural: "virtualmachinesnapshotcontents",
      shortNames: ["vmsnapshotcontent", "vmsnapshotcontents"],
      categories: ["all"],
      status: true,
      columns: [
        { name: "ReadyToUse", type: "boolean", jsonPath: ".status.readyToUse" },
        { name: "CreationTime", type: "date", jsonPath: ".status.creationTime" },
        { name: "Error", type: "string", jsonPath: ".status.error.message" },
      ],
    }),
    def({
      group: "snapshot.kubevirt.io",
      versions: ["v1beta1", "v1alpha1"],
      kind: "VirtualMachineRestore",
      plural: "virtualmachinerestores",
      shortNames: ["vmrestore", "vmrestores"],
      categories: ["all"],
      status: true,
      columns: [
        { name: "TargetKind", type: "string", jsonPath: ".spec.target.kind" },
        { name: "TargetName", type: "string", jsonPath: ".spec.target.name" },
        { name: "Complete", type: "boolean", jsonPath: ".status.complete" },
        { name: "RestoreTime", type: "date", jsonPath: ".status.restoreTime" },
        { name: "Error", type: "string", jsonPath: ".status.error.message" },
      ],
    }),
    def({
      group: "cdi.kubevirt.io",
      versions: ["v1beta1"],
      kind: "DataVolume",
      plural: "datavolumes",
      shortNames: ["dv", "dvs"],
      categories: ["all"],
      status: true,
      columns: [
        { name: "Phase", type: "string", jsonPath: ".status.phase", description: "The phase the data volume is in" },
        {
          name: "Progress",
          type: "string",
          jsonPath: ".status.progress",
          description: "Transfer progress in percentage if known, N/A otherwise",
        },
        {
          name: "Restarts",
          type: "integer",
          jsonPath: ".status.restartCount",
          description: "The number of times the transfer has been restarted.",
        },
        age,
      ],
    }),
  ];
}

/** Core and other built-in kinds, registered in the same CRD shape. */
export function bootstrapBuiltinDefinitions(): ResourceDefinition[] {
  const b = { builtin: true };
  return [
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "Namespace",
      plural: "namespaces",
      shortNames: ["ns"],
      scope: "Cluster",
      status: true,
      extra: ["finalize"],
      fieldSelectors: ["status.phase"],
      columns: [{ name: "Status", type: "string", jsonPath: ".status.phase" }, age],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "Node",
      plural: "nodes",
      shortNames: ["no"],
      scope: "Cluster",
      status: true,
      fieldSelectors: ["spec.unschedulable"],
      columns: [
        { name: "Status", type: "string", jsonPath: "" },
        { name: "Roles", type: "string", jsonPath: "" },
        age,
        { name: "Version", type: "string", jsonPath: ".status.nodeInfo.kubeletVersion" },
        {
          name: "Internal-IP",
          type: "string",
          jsonPath: ".status.addresses[?(@.type=='InternalIP')].address",
          priority: 1,
        },
      ],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "Pod",
      plural: "pods",
      shortNames: ["po"],
      categories: ["all"],
      status: true,
      extra: ["binding", "log"],
      fieldSelectors: [
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
      ],
      columns: [
        { name: "Ready", type: "string", jsonPath: "" },
        { name: "Status", type: "string", jsonPath: "" },
        { name: "Restarts", type: "string", jsonPath: "" },
        age,
        { name: "IP", type: "string", jsonPath: ".status.podIP", priority: 1 },
        { name: "Node", type: "string", jsonPath: ".spec.nodeName", priority: 1 },
      ],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "PersistentVolumeClaim",
      plural: "persistentvolumeclaims",
      shortNames: ["pvc"],
      status: true,
      columns: [
        { name: "Status", type: "string", jsonPath: ".status.phase" },
        { name: "Volume", type: "string", jsonPath: ".spec.volumeName" },
        { name: "Capacity", type: "string", jsonPath: ".status.capacity.storage" },
        { name: "Access Modes", type: "string", jsonPath: "" },
        { name: "StorageClass", type: "string", jsonPath: ".spec.storageClassName" },
        age,
      ],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "PersistentVolume",
      plural: "persistentvolumes",
      shortNames: ["pv"],
      scope: "Cluster",
      status: true,
      columns: [
        { name: "Capacity", type: "string", jsonPath: ".spec.capacity.storage" },
        { name: "Access Modes", type: "string", jsonPath: "" },
        { name: "Reclaim Policy", type: "string", jsonPath: ".spec.persistentVolumeReclaimPolicy" },
        { name: "Status", type: "string", jsonPath: ".status.phase" },
        { name: "Claim", type: "string", jsonPath: "" },
        { name: "StorageClass", type: "string", jsonPath: ".spec.storageClassName" },
        age,
      ],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "ConfigMap",
      plural: "configmaps",
      shortNames: ["cm"],
      top: ["data", "binaryData", "immutable"],
      columns: [{ name: "Data", type: "integer", jsonPath: "" }, age],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "Secret",
      plural: "secrets",
      top: ["data", "stringData", "type", "immutable"],
      fieldSelectors: ["type"],
      columns: [
        { name: "Type", type: "string", jsonPath: ".type" },
        { name: "Data", type: "integer", jsonPath: "" },
        age,
      ],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "ServiceAccount",
      plural: "serviceaccounts",
      shortNames: ["sa"],
      top: ["secrets", "imagePullSecrets", "automountServiceAccountToken"],
      columns: [{ name: "Secrets", type: "integer", jsonPath: "" }, age],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "Service",
      plural: "services",
      shortNames: ["svc"],
      categories: ["all"],
      status: true,
      columns: [
        { name: "Type", type: "string", jsonPath: ".spec.type" },
        { name: "Cluster-IP", type: "string", jsonPath: ".spec.clusterIP" },
        { name: "Port(s)", type: "string", jsonPath: "" },
        age,
      ],
    }),
    def({
      ...b,
      group: "",
      versions: ["v1"],
      kind: "Event",
      plural: "events",
      shortNames: ["ev"],
      open: true,
      top: [],
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
      columns: [
        { name: "Last Seen", type: "date", jsonPath: ".lastTimestamp" },
        { name: "Type", type: "string", jsonPath: ".type" },
        { name: "Reason", type: "string", jsonPath: ".reason" },
        { name: "Object", type: "string", jsonPath: "" },
        { name: "Message", type: "string", jsonPath: ".message" },
      ],
    }),
    def({
      ...b,
      group: "coordination.k8s.io",
      versions: ["v1"],
      kind: "Lease",
      plural: "leases",
      top: ["spec"],
      columns: [{ name: "Holder", type: "string", jsonPath: ".spec.holderIdentity" }, age],
    }),
    def({
      ...b,
      group: "autoscaling",
      versions: ["v2"],
      kind: "HorizontalPodAutoscaler",
      plural: "horizontalpodautoscalers",
      shortNames: ["hpa"],
      categories: ["all"],
      status: true,
      columns: [
        { name: "Reference", type: "string", jsonPath: "" },
        { name: "MinPods", type: "integer", jsonPath: ".spec.minReplicas" },
        { name: "MaxPods", type: "integer", jsonPath: ".spec.maxReplicas" },
        { name: "Replicas", type: "integer", jsonPath: ".status.currentReplicas" },
        age,
      ],
    }),
    def({
      ...b,
      group: "authorization.k8s.io",
      versions: ["v1"],
      kind: "SelfSubjectAccessReview",
      plural: "selfsubjectaccessreviews",
      scope: "Cluster",
    }),
    def({
      ...b,
      group: "apiextensions.k8s.io",
      versions: ["v1"],
      kind: "CustomResourceDefinition",
      plural: "customresourcedefinitions",
      shortNames: ["crd", "crds"],
      scope: "Cluster",
      status: true,
      columns: [{ name: "Created At", type: "string", jsonPath: ".metadata.creationTimestamp" }],
    }),
  ];
}
