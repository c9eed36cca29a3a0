// The CRDs of the kubevirt kinds, built from the hand-written schemas with KubeVirt's names, short names,
// categories, served versions, subresources and printer columns
// (pkg/virt-operator/resource/generate/components/crds.go). KubeVirt's CRDs declare no selectableFields.
// `npm run gen:crds` writes them to deploy/crds/<plural>.<group>.yaml; a test keeps the files in sync.
import type { TSchema } from "@sinclair/typebox";
import { stringify } from "yaml";
import { CDIConfig } from "./cdi/v1beta1/cdiconfig.js";
import { DataVolume } from "./cdi/v1beta1/datavolume.js";
import { KubeVirt } from "./kubevirt/v1/kubevirt.js";
import { VirtualMachine, VirtualMachineInstanceMigration, VirtualMachineInstanceReplicaSet } from "./kubevirt/v1/vm.js";
import { VirtualMachineInstance } from "./kubevirt/v1/vmi.js";
import type {
  CrdVersion,
  CustomResourceDefinition,
  JSONSchemaProps,
  PrinterColumn,
  ResourceDefinition,
} from "./meta/v1/crd.js";
import { MigrationPolicy } from "./migrations/v1alpha1/policy.js";
import { VirtualMachinePool } from "./pool/v1beta1/pool.js";
import {
  VirtualMachineRestore,
  VirtualMachineSnapshot,
  VirtualMachineSnapshotContent,
} from "./snapshot/v1beta1/snapshot.js";

/**
 * A TypeBox schema as a structural OpenAPI v3 schema for a CRD: no symbols; `additionalProperties: false` dropped
 * (a v1 CRD may not combine it with properties, and unknown fields are pruned/reported by default anyway); root
 * metadata left to the server, as kube-apiserver does.
 */
export function openAPISchema(schema: TSchema): JSONSchemaProps {
  const plain = JSON.parse(JSON.stringify(schema), (_key, value: unknown) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const o = value as Record<string, unknown>;
      if (o.additionalProperties === false) delete o.additionalProperties;
    }
    return value;
  }) as JSONSchemaProps & { properties?: Record<string, unknown> };
  if (plain.properties?.metadata) plain.properties.metadata = { type: "object" };
  return plain;
}

const AGE: PrinterColumn = { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" };
const PHASE: PrinterColumn = { name: "Phase", type: "string", jsonPath: ".status.phase" };
const ERROR: PrinterColumn = { name: "Error", type: "string", jsonPath: ".status.error.message" };

interface KindSpec {
  group: string;
  kind: string;
  plural: string;
  shortNames: string[];
  categories?: string[];
  schema: TSchema;
  versions: { name: string; storage: boolean; deprecated?: boolean; deprecationWarning?: string }[];
  columns: PrinterColumn[];
  status: boolean;
  scale?: boolean;
  labels: Record<string, string>;
  /** Default Namespaced. */
  scope?: "Namespaced" | "Cluster";
}

const KUBEVIRT_VERSIONS = [
  { name: "v1", storage: true },
  {
    name: "v1alpha3",
    storage: false,
    deprecated: true,
    deprecationWarning: "kubevirt.io/v1alpha3 is now deprecated and will be removed in a future release.",
  },
];
const ALPHA1_BETA1 = [
  { name: "v1alpha1", storage: false },
  { name: "v1beta1", storage: true },
];
const KV_LABELS = { "kubevirt.io": "" };
const READY_CONDITION = ".status.conditions[?(@.type=='Ready')].status";
const REPLICA_COLUMNS = (what: string): PrinterColumn[] => [
  { name: "Desired", type: "integer", jsonPath: ".spec.replicas", description: `Number of desired ${what}` },
  {
    name: "Current",
    type: "integer",
    jsonPath: ".status.replicas",
    description: `Number of managed and not final or deleted ${what}`,
  },
  {
    name: "Ready",
    type: "integer",
    jsonPath: ".status.readyReplicas",
    description: `Number of managed ${what} which are ready to receive traffic`,
  },
  AGE,
];

const KINDS: KindSpec[] = [
  {
    group: "kubevirt.io",
    kind: "VirtualMachineInstance",
    plural: "virtualmachineinstances",
    shortNames: ["vmi", "vmis"],
    categories: ["all"],
    schema: VirtualMachineInstance,
    versions: KUBEVIRT_VERSIONS,
    columns: [
      AGE,
      PHASE,
      { name: "IP", type: "string", jsonPath: ".status.interfaces[0].ipAddress" },
      { name: "NodeName", type: "string", jsonPath: ".status.nodeName" },
      { name: "Ready", type: "string", jsonPath: READY_CONDITION },
      {
        name: "Live-Migratable",
        type: "string",
        jsonPath: ".status.conditions[?(@.type=='LiveMigratable')].status",
        priority: 1,
      },
      { name: "Paused", type: "string", jsonPath: ".status.conditions[?(@.type=='Paused')].status", priority: 1 },
    ],
    status: false, // KubeVirt's VMI CRD has no status subresource: status is written through the main resource.
    labels: KV_LABELS,
  },
  {
    group: "kubevirt.io",
    kind: "VirtualMachine",
    plural: "virtualmachines",
    shortNames: ["vm", "vms"],
    categories: ["all"],
    schema: VirtualMachine,
    versions: KUBEVIRT_VERSIONS,
    columns: [
      AGE,
      { name: "Status", type: "string", jsonPath: ".status.printableStatus", description: "Human Readable Status" },
      { name: "Ready", type: "string", jsonPath: READY_CONDITION },
    ],
    status: true,
    labels: KV_LABELS,
  },
  {
    group: "kubevirt.io",
    kind: "VirtualMachineInstanceReplicaSet",
    plural: "virtualmachineinstancereplicasets",
    shortNames: ["vmirs", "vmirss"],
    categories: ["all"],
    schema: VirtualMachineInstanceReplicaSet,
    versions: KUBEVIRT_VERSIONS,
    columns: REPLICA_COLUMNS("VirtualMachineInstances"),
    status: true,
    scale: true,
    labels: KV_LABELS,
  },
  {
    group: "kubevirt.io",
    kind: "VirtualMachineInstanceMigration",
    plural: "virtualmachineinstancemigrations",
    shortNames: ["vmim", "vmims"],
    categories: ["all"],
    schema: VirtualMachineInstanceMigration,
    versions: KUBEVIRT_VERSIONS,
    columns: [
      { ...PHASE, description: "The current phase of VM instance migration" },
      {
        name: "VMI",
        type: "string",
        jsonPath: ".spec.vmiName",
        description: "The name of the VMI to perform the migration on",
      },
      // KubeVirt's CRD shows Phase and VMI only; `kubectl get vmim` must print what a KubeVirt user's tooling parses
    ],
    status: true,
    labels: KV_LABELS,
  },
  {
    group: "kubevirt.io",
    kind: "KubeVirt",
    plural: "kubevirts",
    shortNames: ["kv", "kvs"],
    categories: ["all"],
    schema: KubeVirt,
    versions: KUBEVIRT_VERSIONS,
    columns: [AGE, PHASE],
    status: true,
    labels: { "operator.kubevirt.io": "" },
  },
  {
    group: "migrations.kubevirt.io",
    kind: "MigrationPolicy",
    plural: "migrationpolicies",
    shortNames: [],
    categories: ["all"],
    schema: MigrationPolicy,
    versions: [{ name: "v1alpha1", storage: true }],
    columns: [AGE],
    status: true,
    labels: KV_LABELS,
    scope: "Cluster",
  },
  {
    group: "pool.kubevirt.io",
    kind: "VirtualMachinePool",
    plural: "virtualmachinepools",
    shortNames: ["vmpool", "vmpools"],
    categories: ["all"],
    schema: VirtualMachinePool,
    versions: ALPHA1_BETA1,
    columns: REPLICA_COLUMNS("VirtualMachines"),
    status: true,
    scale: true,
    labels: KV_LABELS,
  },
  {
    group: "snapshot.kubevirt.io",
    kind: "VirtualMachineSnapshot",
    plural: "virtualmachinesnapshots",
    shortNames: ["vmsnapshot", "vmsnapshots"],
    categories: ["all"],
    schema: VirtualMachineSnapshot,
    versions: ALPHA1_BETA1,
    columns: [
      { name: "SourceKind", type: "string", jsonPath: ".spec.source.kind" },
      { name: "SourceName", type: "string", jsonPath: ".spec.source.name" },
      PHASE,
      { name: "ReadyToUse", type: "boolean", jsonPath: ".status.readyToUse" },
      { name: "CreationTime", type: "date", jsonPath: ".status.creationTime" },
      ERROR,
    ],
    status: true,
    labels: KV_LABELS,
  },
  {
    group: "snapshot.kubevirt.io",
    kind: "VirtualMachineSnapshotContent",
    plural: "virtualmachinesnapshotcontents",
    shortNames: ["vmsnapshotcontent", "vmsnapshotcontents"],
    categories: ["all"],
    schema: VirtualMachineSnapshotContent,
    versions: ALPHA1_BETA1,
    columns: [
      { name: "ReadyToUse", type: "boolean", jsonPath: ".status.readyToUse" },
      { name: "CreationTime", type: "date", jsonPath: ".status.creationTime" },
      ERROR,
    ],
    status: true,
    labels: KV_LABELS,
  },
  {
    group: "snapshot.kubevirt.io",
    kind: "VirtualMachineRestore",
    plural: "virtualmachinerestores",
    shortNames: ["vmrestore", "vmrestores"],
    categories: ["all"],
    schema: VirtualMachineRestore,
    versions: ALPHA1_BETA1,
    columns: [
      { name: "TargetKind", type: "string", jsonPath: ".spec.target.kind" },
      { name: "TargetName", type: "string", jsonPath: ".spec.target.name" },
      { name: "Complete", type: "boolean", jsonPath: ".status.complete" },
      { name: "RestoreTime", type: "date", jsonPath: ".status.restoreTime" },
    ],
    status: true,
    labels: KV_LABELS,
  },
  {
    group: "cdi.kubevirt.io",
    kind: "DataVolume",
    plural: "datavolumes",
    shortNames: ["dv", "dvs"],
    categories: ["all"],
    schema: DataVolume,
    versions: [{ name: "v1beta1", storage: true }],
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
      AGE,
    ],
    status: true,
    labels: { "cdi.kubevirt.io": "" },
  },
  {
    group: "cdi.kubevirt.io",
    kind: "CDIConfig",
    plural: "cdiconfigs",
    shortNames: [],
    schema: CDIConfig,
    versions: [{ name: "v1beta1", storage: true }],
    columns: [AGE],
    status: true,
    labels: { "cdi.kubevirt.io": "" },
    scope: "Cluster",
  },
];

function toCrd(k: KindSpec): CustomResourceDefinition {
  const schema = openAPISchema(k.schema);
  const versions: CrdVersion[] = k.versions.map((v) => {
    const out: CrdVersion = { name: v.name, served: true, storage: v.storage };
    if (v.deprecated) out.deprecated = true;
    if (v.deprecationWarning) out.deprecationWarning = v.deprecationWarning;
    out.schema = { openAPIV3Schema: structuredClone(schema) };
    if (k.status || k.scale) {
      out.subresources = {};
      if (k.status) out.subresources.status = {};
      if (k.scale)
        out.subresources.scale = {
          specReplicasPath: ".spec.replicas",
          statusReplicasPath: ".status.replicas",
          labelSelectorPath: ".status.labelSelector",
        };
    }
    out.additionalPrinterColumns = k.columns.map((c) => ({ ...c }));
    return out;
  });
  const singular = k.kind.toLowerCase();
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${k.plural}.${k.group}`, labels: { ...k.labels } },
    spec: {
      group: k.group,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular,
        ...(k.shortNames.length ? { shortNames: [...k.shortNames] } : {}),
        ...(k.categories ? { categories: [...k.categories] } : {}),
      },
      scope: k.scope ?? "Namespaced",
      versions,
    },
  };
}

/** The CRDs of every kubevirt (and CDI) kind tsvirt serves. */
export function kubevirtCrds(): CustomResourceDefinition[] {
  return KINDS.map(toCrd);
}

/** kubevirtCrds() as registry entries (custom kinds: merge/JSON patch and apply, no strategic merge). */
export function kubevirtDefinitions(): ResourceDefinition[] {
  return kubevirtCrds().map((crd) => ({ crd, builtin: false }));
}

/** The generated deploy/crds files: one CRD per file, `<plural>.<group>.yaml`. */
export function crdFiles(): { path: string; content: string }[] {
  return kubevirtCrds().map((crd) => ({
    path: `deploy/crds/${crd.metadata.name}.yaml`,
    content: `# Generated by \`npm run gen:crds\` from api/ (do not edit).\n${stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false })}`,
  }));
}
