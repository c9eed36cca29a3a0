// Clone (DataVolume source.pvc) planning, pure: whether the source can be read now, where the target goes, and which
// worker pods the clone needs. Same node as the source: no source pod, the target's importer reads the source volume
// file directly (the node agent puts its path in the job). Other node: the clone-source pod on the source's node
// serves the volume; the target's importer starts only once that pod is Ready and connects to its pod IP.
// Same node and both volumes Filesystem: no pod at all. As a CSI driver clones a volume (CDI's csi-clone), the
// provisioner's node half copies the source's disk.img into the target's: the DV controller asks on the target PV
// (`tsvirt.io/clone-request`, set on the claim it creates so the PV is born with it), the node agent checks it
// against the DV, copies, fsyncs and answers there (`tsvirt.io/clone-result`).
//
// Cross-namespace clones follow CDI's rule with the API's own authorizer: the requester must be allowed to `create`
// `datavolumes/source` (group cdi.kubevirt.io) in the source's namespace. That is checked when the DV is admitted
// (apiserver/admission/datavolume.ts crossNamespaceCloneCauses); the controller acts for the DV after that.

import { formatBytes } from "../../api/index.js";
import type {
  PersistentVolumeClaim as Claim,
  DataVolume,
  Pod,
  PersistentVolume as Volume,
} from "../../client/index.js";
import { CLONE_REQUEST_ANNOTATION, claimSize, isLocalVolume, volumeModeOf, volumeNode, volumeSize } from "../plan.js";
import { parseOutcome, SOURCE_VOLUME_NAME, type WorkerOutcome } from "./pods.js";

/** CDI's reasons for a clone that waits or fails (Running=False and the DV's events). */
export const CloneReasons = {
  /** CDI's event when the source PVC does not exist. */
  withoutSource: "CloneWithoutSource",
  sourceNotBound: "CloneSourceNotBound",
  /** CDI's event while a pod (a running VMI's launcher) uses the source claim. */
  sourceInUse: "CloneSourceInUse",
  sourceNotLocal: "CloneSourceNotLocal",
  targetTooSmall: "CloneTargetTooSmall",
  sourceNotReady: "CloneSourceNotReady",
} as const;

export interface CloneInput {
  dv: DataVolume;
  /** The target claim (the DV's own) and its volume once bound. */
  target?: Claim;
  targetPV?: Volume;
  source?: {
    pvc?: Claim;
    pv?: Volume;
    /** Pods in the source's namespace (the shell passes them; only those using the source claim count). */
    pods?: readonly Pod[];
  };
}

export type CloneGate =
  /** Not yet: stay CloneScheduled with Running=False `reason`/`message` (and a Warning event of that reason). */
  | { ok: false; reason: string; message: string }
  /** `onNode`: same node, both volumes Filesystem: the node agent copies the file (no worker pod). */
  | { ok: true; sourceNode: string; sameNode: boolean; onNode: boolean };

function isTerminal(pod: Pod): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

/**
 * Pods (not terminal) that mount the claim, other than clone-source pods (which only read it): a running VMI's
 * launcher, a hotplug pod, anything that may write to it while it is copied.
 */
export function claimUsers(claim: Claim, pods: readonly Pod[]): Pod[] {
  const ns = claim.metadata.namespace;
  const name = claim.metadata.name;
  return pods.filter(
    (p) =>
      p.metadata.namespace === ns &&
      !isTerminal(p) &&
      (p.spec.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === name && v.name !== SOURCE_VOLUME_NAME),
  );
}

/** The source's bytes: its PV's capacity (disk.img is that size), else the claim's. */
export function sourceBytes(source: Claim, pv: Volume | undefined): number {
  return (pv ? volumeSize(pv) : 0) || claimSize(source);
}

/** Whether the clone may go on now, and where its source is. */
export function cloneGate(input: CloneInput): CloneGate {
  const ref = input.dv.spec.source?.pvc;
  if (!ref) return { ok: false, reason: "InvalidSource", message: "spec.source.pvc is not set" };
  const what = `${ref.namespace}/${ref.name}`;
  const src = input.source?.pvc;
  if (!src || src.metadata.deletionTimestamp) {
    return { ok: false, reason: CloneReasons.withoutSource, message: `The source pvc ${what} doesn't exist` };
  }
  const pv = input.source?.pv;
  if (src.status?.phase !== "Bound" || !pv) {
    return {
      ok: false,
      reason: CloneReasons.sourceNotBound,
      message: `The source pvc ${what} is not Bound yet (phase ${src.status?.phase ?? "Pending"}): a WaitForFirstConsumer source is bound by its first consumer`,
    };
  }
  const sourceNode = volumeNode(pv);
  if (!isLocalVolume(pv) || !sourceNode) {
    return {
      ok: false,
      reason: CloneReasons.sourceNotLocal,
      message: `The source pvc ${what} is on volume ${pv.metadata.name}, which is not a tsvirt-local volume: only those can be cloned`,
    };
  }
  const users = claimUsers(src, input.source?.pods ?? []);
  if (users[0]) {
    return {
      ok: false,
      reason: CloneReasons.sourceInUse,
      message: `pod ${users[0].metadata.namespace}/${users[0].metadata.name} using PersistentVolumeClaim ${ref.name}: the clone waits until it stops`,
    };
  }
  const target = input.target;
  if (target) {
    const need = sourceBytes(src, pv);
    const have = (input.targetPV ? volumeSize(input.targetPV) : 0) || claimSize(target);
    if (have < need) {
      return {
        ok: false,
        reason: CloneReasons.targetTooSmall,
        message: `The target claim holds ${formatBytes(have)}, less than the source pvc ${what} (${formatBytes(need)}): give the DataVolume at least the source's size, or no size to take it`,
      };
    }
  }
  const targetNode = input.targetPV ? volumeNode(input.targetPV) : undefined;
  const sameNode = targetNode === sourceNode;
  const files =
    volumeModeOf(pv) !== "Block" && input.targetPV !== undefined && volumeModeOf(input.targetPV) !== "Block";
  return { ok: true, sourceNode, sameNode, onNode: sameNode && files };
}

/** What the clone's worker pods should be, given the gate and the source pod's state. */
export type ClonePods =
  /** Same node: the importer alone; any source pod goes. */
  | { importer: true; sourcePod: "delete" }
  /** Other node: a source pod (create it when missing); the importer once that pod is Ready. */
  | { importer: boolean; sourcePod: "keep" | "create" };

export function clonePods(gate: CloneGate & { ok: true }, sourcePod: Pod | undefined): ClonePods {
  if (gate.sameNode) return { importer: true, sourcePod: "delete" };
  if (!sourcePod) return { importer: false, sourcePod: "create" };
  const ready =
    sourcePod.status?.phase === "Running" &&
    sourcePod.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
  return { importer: ready, sourcePod: "keep" };
}

// ---- the node's copy (same node, Filesystem): request and result on the target PV ----

export const CloneAnnotations = {
  /**
   * Target PV, written by the DV controller (on the claim it creates, whence the provisioner copies it to the PV, or
   * on the PV later): `{"uid":<dv uid>,"source":<source PV>,"attempt":n}`.
   */
  request: CLONE_REQUEST_ANNOTATION,
  /** Target PV, written by its node's agent: `{"uid","attempt"}` plus the worker outcome line's fields. */
  result: "tsvirt.io/clone-result",
} as const;

export interface CloneRequest {
  uid: string;
  source: string;
  /** The DV's failures counted so far: a retry is a new attempt, so the node copies again. */
  attempt: number;
}

export type CloneResult = { uid: string; attempt: number } & WorkerOutcome;

function annotationJson(pv: Volume | undefined, key: string): Record<string, unknown> | undefined {
  const raw = pv?.metadata.annotations?.[key];
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function cloneRequestOf(pv: Volume | undefined): CloneRequest | undefined {
  const v = annotationJson(pv, CloneAnnotations.request);
  if (typeof v?.uid !== "string" || typeof v.source !== "string" || !Number.isSafeInteger(v.attempt)) return undefined;
  return { uid: v.uid, source: v.source, attempt: v.attempt as number };
}

export function cloneResultOf(pv: Volume | undefined): CloneResult | undefined {
  const v = annotationJson(pv, CloneAnnotations.result);
  if (typeof v?.uid !== "string" || !Number.isSafeInteger(v.attempt)) return undefined;
  const out = parseOutcome(JSON.stringify(v));
  return out && { uid: v.uid, attempt: v.attempt as number, ...out };
}

/** The result answers this very request (same DV, same attempt). */
export function answers(result: CloneResult | undefined, req: CloneRequest | undefined): result is CloneResult {
  return !!result && !!req && result.uid === req.uid && result.attempt === req.attempt;
}

/** The annotation value of a request or a result. */
export function formatCloneAnnotation(v: CloneRequest | CloneResult): string {
  return JSON.stringify(v);
}
