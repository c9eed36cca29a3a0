// The DataVolume worker pods (storage contract §2): names, labels and shapes, rendered by the DV controller and run
// by the node agent's pod runner (which matches them by label and owner, never runs their image or command), and the
// one-line termination message a worker leaves. Pure.
import { createHash } from "node:crypto";
import { controllerRef } from "../../api/index.js";
import type { DataVolume, OwnerReference, PersistentVolumeClaim, Pod } from "../../client/index.js";

export const CDI_API_VERSION = "cdi.kubevirt.io/v1beta1";
/** Every worker pod: CDI's app label. */
export const WORKER_APP_LABEL = "app";
export const WORKER_APP = "containerized-data-importer";
/** The role label (CDI's `cdi.kubevirt.io` label) and its values. */
export const ROLE_LABEL = "cdi.kubevirt.io";
export const WorkerRoles = {
  importer: "importer",
  upload: "cdi-upload-server",
  cloneSource: "cdi-clone-source",
} as const;
export type WorkerRole = (typeof WorkerRoles)[keyof typeof WorkerRoles];

/** Claim volume names in the worker pods. */
export const DATA_VOLUME_NAME = "cdi-data-vol";
export const SOURCE_VOLUME_NAME = "cdi-source-vol";

export const DvAnnotations = {
  /** Worker pod: transfer progress ("45.2%"), relayed by the node agent from `<podDir>/progress`. */
  progress: "cdi.kubevirt.io/storage.progress",
  /** DV (copied to its PVC): bind now, not on the first consumer (CDI's; `virtctl image-upload` sets it). */
  immediateBind: "cdi.kubevirt.io/storage.bind.immediate.requested",
  /** PVC: worker restarts so far (CDI keeps restartCount monotonic through it). */
  restarts: "cdi.kubevirt.io/storage.pod.restarts",
  /** PVC: the last worker failure (CDI's running-condition annotations). */
  runningReason: "cdi.kubevirt.io/storage.condition.running.reason",
  runningMessage: "cdi.kubevirt.io/storage.condition.running.message",
  /** PVC: uid of the failed worker pod last counted in `restarts` (so a retried reconcile never counts it twice). */
  lastFailedPod: "tsvirt.io/storage.pod.last-failed-uid",
  /** PVC: when that failure was seen (RFC 3339): the backoff runs from it. */
  lastFailedAt: "tsvirt.io/storage.pod.last-failed-at",
  /** Clone source pod: the target DV (`<ns>/<name>`) and its uid. */
  cloneTarget: "tsvirt.io/clone-target",
  cloneTargetUid: "tsvirt.io/clone-target-uid",
} as const;

const MAX_NAME = 63;

/** `<prefix><name>`, or when longer than 63 characters its first part plus a hash of the whole (stable). */
export function workerPodName(prefix: string, name: string): string {
  const full = `${prefix}${name}`;
  if (full.length <= MAX_NAME) return full;
  const hash = createHash("sha256").update(full).digest("hex").slice(0, 10);
  return `${full.slice(0, MAX_NAME - hash.length - 1).replace(/[-.]+$/, "")}-${hash}`;
}

export function importerPodName(dv: DataVolume): string {
  return workerPodName("importer-", dv.metadata.name ?? "");
}
export function uploadPodName(dv: DataVolume): string {
  return workerPodName("cdi-upload-", dv.metadata.name ?? "");
}
export function cloneSourcePodName(dv: DataVolume): string {
  return workerPodName("", `${dv.metadata.uid ?? ""}-source-pod`);
}

export function dvOwnerRef(dv: DataVolume): OwnerReference {
  return controllerRef(dv, CDI_API_VERSION, "DataVolume");
}

function basePod(
  role: WorkerRole,
  name: string,
  namespace: string,
  nodeName: string,
  volume: { name: string; claimName: string; readOnly?: boolean },
): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { [WORKER_APP_LABEL]: WORKER_APP, [ROLE_LABEL]: role } },
    spec: {
      nodeName,
      restartPolicy: "Never",
      containers: [
        {
          name: role,
          // Informational: the node agent's pod shape decides what runs, never a pod's image or command.
          image: `tsvirt/${role}`,
          volumeMounts: [{ name: volume.name, mountPath: role === WorkerRoles.cloneSource ? "/source" : "/data" }],
        },
      ],
      volumes: [
        {
          name: volume.name,
          persistentVolumeClaim: { claimName: volume.claimName, ...(volume.readOnly ? { readOnly: true } : {}) },
        },
      ],
    },
  };
}

/** A pod that writes the DV's claim, in the DV's namespace and controlled by it. */
function renderTargetPod(
  role: WorkerRole,
  name: string,
  dv: DataVolume,
  pvc: PersistentVolumeClaim,
  node: string,
): Pod {
  const pod = basePod(role, name, dv.metadata.namespace ?? "", node, {
    name: DATA_VOLUME_NAME,
    claimName: pvc.metadata.name ?? "",
  });
  pod.metadata.ownerReferences = [dvOwnerRef(dv)];
  return pod;
}

/** The pod that fills the DV's claim from a registry, http, blank (or, as the clone target, from a source pod). */
export function renderImporterPod(dv: DataVolume, pvc: PersistentVolumeClaim, nodeName: string): Pod {
  return renderTargetPod(WorkerRoles.importer, importerPodName(dv), dv, pvc, nodeName);
}

/** The upload server's pod: receives the data the upload proxy passes on and writes the DV's claim. */
export function renderUploadPod(dv: DataVolume, pvc: PersistentVolumeClaim, nodeName: string): Pod {
  return renderTargetPod(WorkerRoles.upload, uploadPodName(dv), dv, pvc, nodeName);
}

/**
 * The pod that reads a clone's source claim (in the source's namespace, on the source volume's node). No owner:
 * it may live in another namespace; the annotations name the target DV, whose controller deletes it.
 */
export function renderCloneSourcePod(dv: DataVolume, source: PersistentVolumeClaim, nodeName: string): Pod {
  const pod = basePod(WorkerRoles.cloneSource, cloneSourcePodName(dv), source.metadata.namespace ?? "", nodeName, {
    name: SOURCE_VOLUME_NAME,
    claimName: source.metadata.name ?? "",
    readOnly: true,
  });
  pod.metadata.annotations = {
    [DvAnnotations.cloneTarget]: `${dv.metadata.namespace}/${dv.metadata.name}`,
    [DvAnnotations.cloneTargetUid]: dv.metadata.uid ?? "",
  };
  return pod;
}

/** The role of a worker pod (its labels), if it is one. */
export function workerRole(pod: Pod): WorkerRole | undefined {
  const labels = pod.metadata.labels ?? {};
  if (labels[WORKER_APP_LABEL] !== WORKER_APP) return undefined;
  const role = labels[ROLE_LABEL];
  return (Object.values(WorkerRoles) as string[]).includes(role ?? "") ? (role as WorkerRole) : undefined;
}

// ---- the worker's termination message (contract §2) ----

export const FATAL_REASONS = [
  "BackingFile",
  "ImageTooLarge",
  "ChecksumMismatch",
  "NotADiskImage",
  "SourceNotFound",
  "InvalidSource",
] as const;

export type WorkerOutcome =
  | { outcome: "Succeeded"; message: string; bytes: number; sha256: string }
  | { outcome: "Failed"; fatal: boolean; reason: string; message: string };

/** The one JSON line a worker writes last. */
export function formatOutcome(o: WorkerOutcome): string {
  return `${JSON.stringify(o)}\n`;
}

/** Parses a worker's termination message; undefined when it is not one well-formed outcome line. */
export function parseOutcome(message: string | undefined): WorkerOutcome | undefined {
  if (!message) return undefined;
  const line = message.trim().split("\n").pop() ?? "";
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const str = (x: unknown) => (typeof x === "string" ? x : "");
  if (o.outcome === "Succeeded" && typeof o.bytes === "number" && typeof o.sha256 === "string") {
    return { outcome: "Succeeded", message: str(o.message), bytes: o.bytes, sha256: o.sha256 };
  }
  if (o.outcome === "Failed") {
    return { outcome: "Failed", fatal: o.fatal === true, reason: str(o.reason) || "Error", message: str(o.message) };
  }
  return undefined;
}
