// Kinds tsvirt stores (they are KubeVirt/Kubernetes API, so manifests apply unchanged) but that no controller,
// node agent or launcher acts on yet. Admission answers every create and update of one with a Warning saying so,
// so nothing is accepted and then silently ignored. One row per kind: remove a row when its controller lands.
// The list was made by checking which kinds controller/ and handler/ watch or read (VM, VMI, VMIRS, Pod, Node,
// Namespace, Event, Lease, and ConfigMap/Secret/ServiceAccount as volume sources).
import type { AdmissionPlugin, AdmissionRequest } from "./types.js";

export interface InertKind {
  group: string;
  version: string;
  kind: string;
  resource: string;
  /** Why nothing acts on it, as the end of the warning. */
  reason: string;
}

export const INERT_KINDS: readonly InertKind[] = [
  {
    group: "snapshot.kubevirt.io",
    version: "v1beta1",
    kind: "VirtualMachineSnapshot",
    resource: "virtualmachinesnapshots",
    reason: "no snapshot controller runs in this version",
  },
  {
    group: "snapshot.kubevirt.io",
    version: "v1beta1",
    kind: "VirtualMachineSnapshotContent",
    resource: "virtualmachinesnapshotcontents",
    reason: "no snapshot controller runs in this version",
  },
  {
    group: "snapshot.kubevirt.io",
    version: "v1beta1",
    kind: "VirtualMachineRestore",
    resource: "virtualmachinerestores",
    reason: "no restore controller runs in this version",
  },
  {
    group: "pool.kubevirt.io",
    version: "v1beta1",
    kind: "VirtualMachinePool",
    resource: "virtualmachinepools",
    reason: "no pool controller runs in this version, no VMs are created from it",
  },
  {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    resource: "horizontalpodautoscalers",
    reason: "no autoscaler runs in this version",
  },
  {
    group: "",
    version: "v1",
    kind: "Service",
    resource: "services",
    reason: "no cluster IP is allocated and no proxy forwards its traffic in this version",
  },
];

/** The warning for a stored-but-inert kind, e.g. `pool.kubevirt.io/v1beta1 VirtualMachinePool is stored but not acted on yet: …`. */
export function inertWarning(k: InertKind): string {
  const apiVersion = k.group ? `${k.group}/${k.version}` : k.version;
  return `${apiVersion} ${k.kind} is stored but not acted on yet: ${k.reason}`;
}

const BY_RESOURCE = new Map(INERT_KINDS.map((k) => [`${k.group}/${k.resource}`, k]));

function inertKindOf(req: AdmissionRequest): InertKind | undefined {
  if ((req.subResource ?? "") !== "") return undefined;
  if (req.operation !== "CREATE" && req.operation !== "UPDATE") return undefined;
  return BY_RESOURCE.get(`${req.resource.group}/${req.resource.resource}`);
}

/** A validating plugin that allows every write of an inert kind and answers it with the kind's warning. */
export function inertKindsPlugin(): AdmissionPlugin {
  const decide = (req: AdmissionRequest) => {
    const k = inertKindOf(req);
    return { response: { uid: req.uid, allowed: true, ...(k ? { warnings: [inertWarning(k)] } : {}) } };
  };
  return {
    name: "stored-but-inert.tsvirt.io",
    type: "validating",
    matches: (req) => inertKindOf(req) !== undefined,
    admit: decide,
    review(review) {
      const req = review.request;
      if (!req) throw new TypeError("Cannot review an AdmissionReview without a request");
      return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: decide(req).response };
    },
  };
}
