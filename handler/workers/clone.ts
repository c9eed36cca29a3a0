// Clones on the node (DataVolume source.pvc). The clone target is an importer pod: its job's source is the source
// volume's path when that volume is on this node, else the clone-source pod's IP (clonePvcSource). The clone-source
// pod (label cdi.kubevirt.io=cdi-clone-source, no owner: it may live in the source's namespace) runs
// `tsvirt clonesource` over the source volume of this node; its annotations name the target DV, whose uid is checked
// and whose spec.source.pvc must be the very claim the pod mounts.
import { stat } from "node:fs/promises";
import { invalid, isStatusError, statusError } from "../../lib/errors.js";
import { CLONE_PORT, type CloneSourceJob, cloneSourceReadyPath } from "../../storage/clone/index.js";
import { cloneSourcePodName, DvAnnotations, SOURCE_VOLUME_NAME, WorkerRoles } from "../../storage/datavolume/index.js";
import type { PvcJobSource } from "../../storage/importer/index.js";
import { volumeNode } from "../../storage/index.js";
import type { PodShape } from "../pod-shapes.js";
import { type PersistentVolume, type PersistentVolumeClaim, type Pod, refs } from "../ports.js";
import { claimVolume } from "../prepare.js";
import type { WorkerShapeDeps } from "./importer.js";
import { DV_KIND, type DvObject, podClaim, type WorkerJobDeps, workerPaths, writePrivate } from "./job.js";

async function getOr404<T>(what: string, get: () => Promise<T>): Promise<T> {
  try {
    return await get();
  } catch (e) {
    if (isStatusError(e) && e.code === 404) throw statusError(404, "NotFound", `${what} not found`);
    throw e;
  }
}

function claimDeps(d: WorkerJobDeps) {
  return {
    api: d.api,
    puller: undefined as never,
    node: d.node,
    dataDir: d.dataDir,
    ...(d.loopDeviceOf ? { loopDeviceOf: d.loopDeviceOf } : {}),
  };
}

/**
 * The clone target's job source: the source claim's volume when it is on this node (read directly), else the
 * clone-source pod's address (Running, serving this DV). Rejects (the pod fails to start, the DV retries) otherwise.
 */
export async function clonePvcSource(d: WorkerJobDeps, dv: DvObject): Promise<PvcJobSource> {
  const ref = dv.spec.source?.pvc;
  const name = dv.metadata.name ?? "";
  if (!ref)
    throw invalid(DV_KIND, name, [{ type: "FieldValueRequired", field: "spec.source.pvc", message: "Required value" }]);
  const what = `source PersistentVolumeClaim ${ref.namespace}/${ref.name}`;
  const pvc = await getOr404(what, () => d.api.get<PersistentVolumeClaim>(refs.pvcs, ref.namespace, ref.name));
  const pvName = pvc.spec?.volumeName;
  if (!pvName) throw statusError(409, "Conflict", `${what} is not bound`);
  const pv = await getOr404(`volume ${pvName} of the ${what}`, () =>
    d.api.get<PersistentVolume>(refs.pvs, undefined, pvName),
  );
  if (volumeNode(pv) === d.node) {
    const c = await claimVolume(claimDeps(d), ref.namespace, ref.name, "spec.source.pvc", name, DV_KIND);
    return { kind: "pvc", local: { path: c.path, block: c.block } };
  }
  const podName = cloneSourcePodName(dv);
  const pod = await getOr404(`clone source pod ${ref.namespace}/${podName}`, () =>
    d.api.get<Pod>(refs.pods, ref.namespace, podName),
  );
  const ip = pod.status?.podIP;
  if (pod.metadata?.annotations?.[DvAnnotations.cloneTargetUid] !== dv.metadata.uid) {
    throw statusError(409, "Conflict", `pod ${ref.namespace}/${podName} is not the clone source of this DataVolume`);
  }
  if (pod.status?.phase !== "Running" || !ip) {
    throw statusError(409, "Conflict", `the clone source pod ${ref.namespace}/${podName} is not running yet`);
  }
  return { kind: "pvc", remote: { host: ip, port: CLONE_PORT, token: dv.metadata.uid ?? "" } };
}

/** Pure: a clone-source pod and the uid of the DV it serves (its annotation). */
export function matchCloneSource(pod: Pod): { ok: true; ownerUid: string } | { ok: false; why: string } {
  const role = pod.metadata?.labels?.["cdi.kubevirt.io"];
  if (role !== WorkerRoles.cloneSource) return { ok: false, why: `not a ${WorkerRoles.cloneSource} pod` };
  const uid = pod.metadata?.annotations?.[DvAnnotations.cloneTargetUid];
  const target = pod.metadata?.annotations?.[DvAnnotations.cloneTarget];
  if (!uid || !target?.includes("/")) {
    return {
      ok: false,
      why: `a ${WorkerRoles.cloneSource} pod must name its target DataVolume (${DvAnnotations.cloneTarget}, ${DvAnnotations.cloneTargetUid})`,
    };
  }
  return { ok: true, ownerUid: uid };
}

export function cloneSourceShape(d: WorkerShapeDeps & { argv: (roleCmd: string, job: string) => string[] }): PodShape {
  return {
    name: "cdi-clone-source",
    match: matchCloneSource,
    async command(ownerUid, podDir, pod) {
      const [ns = "", name = ""] = (pod.metadata?.annotations?.[DvAnnotations.cloneTarget] ?? "").split("/");
      const dv = await getOr404(`DataVolume ${ns}/${name}`, () => d.api.get<DvObject>(refs.datavolumes, ns, name));
      if (dv.metadata.uid !== ownerUid) {
        throw statusError(404, "NotFound", `DataVolume ${ns}/${name} is not the clone target (uid ${ownerUid})`);
      }
      const podNs = pod.metadata?.namespace ?? "";
      const claim = podClaim(pod, SOURCE_VOLUME_NAME, name);
      const ref = dv.spec.source?.pvc;
      if (ref?.namespace !== podNs || ref.name !== claim) {
        // Only the claim the DV clones may be served, never another one of that namespace.
        throw invalid(DV_KIND, name, [
          {
            type: "FieldValueInvalid",
            field: "spec.source.pvc",
            message: `the clone source pod mounts ${podNs}/${claim}, which is not the DataVolume's source`,
          },
        ]);
      }
      const c = await claimVolume(claimDeps(d), podNs, claim, "spec.volumes[cdi-source-vol]", name, DV_KIND);
      const p = workerPaths(podDir);
      const job: CloneSourceJob = {
        version: 1,
        kind: "clonesource",
        owner: { namespace: ns, name, uid: ownerUid },
        source: { path: c.path, block: c.block },
        token: ownerUid,
        port: CLONE_PORT,
        terminationLog: p.terminationLog,
      };
      await writePrivate(p.job, `${JSON.stringify(job, null, 2)}\n`);
      return { argv: d.argv("clonesource", p.job) };
    },
    // It serves on its pod IP: no VM binding may take the connections.
    plainNetwork: true,
    // Ready once it listens (it writes the marker then): the target's importer connects only after that.
    ready: async (_uid, podDir) => (await stat(cloneSourceReadyPath(podDir)).catch(() => undefined)) !== undefined,
    terminationMessagePath: (podDir) => workerPaths(podDir).terminationLog,
  };
}
