// Node-side job resolution for the data-mover pods the DV controller renders (contract §2): the pod's owner
// DataVolume (uid checked), its claim → PV (a tsvirt-local volume of THIS node, through prepare.ts's claimVolume) →
// the target, and the job file the worker reads. Shared by the importer, upload and clone-target shapes.
import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ConfigMap, DataVolume, Secret } from "../../api/index.js";
import { invalid, isStatusError, statusError } from "../../lib/errors.js";
import type { JobTarget, WorkerJob } from "../../storage/importer/index.js";
import { type ApiClient, type Pod, refs } from "../ports.js";
import { claimVolume, type NodePrepareDeps } from "../prepare.js";

export const DV_KIND = { group: "cdi.kubevirt.io", kind: "DataVolume" };
/** The claim volume of a target worker pod (CDI's name). */
export const DATA_VOLUME_NAME = "cdi-data-vol";

export type DvObject = DataVolume & { metadata: { name?: string; namespace?: string; uid?: string } };

export interface WorkerJobDeps {
  node: string;
  dataDir: string;
  api: Pick<ApiClient, "get">;
  loopDeviceOf?: NodePrepareDeps["loopDeviceOf"];
}

/** Pure: a pod of this role (label cdi.kubevirt.io=<role>) controlled by a DataVolume, and that DV's uid. */
export function matchDvWorker(pod: Pod, role: string): { ok: true; ownerUid: string } | { ok: false; why: string } {
  const label = pod.metadata?.labels?.["cdi.kubevirt.io"];
  if (label !== role) return { ok: false, why: `not a ${role} pod (label cdi.kubevirt.io is ${label ?? "absent"})` };
  const owner = pod.metadata?.ownerReferences?.find((r) => r.controller === true);
  if (owner?.kind !== "DataVolume" || !owner.uid) {
    return { ok: false, why: `a ${role} pod must have a DataVolume as its controller owner` };
  }
  return { ok: true, ownerUid: owner.uid };
}

/** The pod's owner DataVolume, refused (404) when it is gone or is another object of the same name. */
export async function ownerDataVolume(api: Pick<ApiClient, "get">, pod: Pod, ownerUid: string): Promise<DvObject> {
  const ns = pod.metadata?.namespace ?? "default";
  const name = pod.metadata?.ownerReferences?.find((r) => r.uid === ownerUid)?.name ?? "";
  let dv: DvObject;
  try {
    dv = await api.get<DvObject>(refs.datavolumes, ns, name);
  } catch (e) {
    if (isStatusError(e) && e.code === 404) throw statusError(404, "NotFound", `DataVolume ${ns}/${name} not found`);
    throw e;
  }
  if (dv.metadata.uid !== ownerUid) {
    throw statusError(404, "NotFound", `DataVolume ${ns}/${name} is not the pod's owner (uid ${ownerUid})`);
  }
  return dv;
}

/** The claim named by the pod's volume `volume` (its persistentVolumeClaim), or a 422. */
export function podClaim(pod: Pod, volume: string, dvName: string): string {
  const i = pod.spec?.volumes?.findIndex((v) => v.name === volume) ?? -1;
  const claim = i >= 0 ? pod.spec?.volumes?.[i]?.persistentVolumeClaim?.claimName : undefined;
  if (!claim) {
    throw invalid(DV_KIND, dvName, [
      { type: "FieldValueRequired", field: "spec.volumes", message: `the pod has no claim volume "${volume}"` },
    ]);
  }
  return claim;
}

/** The volume a DV's worker writes: its claim's tsvirt-local volume on this node, and the claim's size. */
export async function resolveTarget(d: WorkerJobDeps, ns: string, claim: string, dvName: string): Promise<JobTarget> {
  const c = await claimVolume(
    {
      api: d.api,
      puller: undefined as never,
      node: d.node,
      dataDir: d.dataDir,
      ...(d.loopDeviceOf ? { loopDeviceOf: d.loopDeviceOf } : {}),
    },
    ns,
    claim,
    "spec.volumes[cdi-data-vol]",
    dvName,
    DV_KIND,
  );
  // The most an image may take: the volume's size. Filesystem: the PV's, not disk.img's length, which is 0 for a
  // moment while the node makes it (created, then sized); the sink sizes the target itself (cleanTarget). Block: the
  // loop device's file, sized before the device exists.
  const length = (await stat(c.image)).size;
  const size = c.block ? length : Math.max(c.bytes, length);
  return { path: c.path, block: c.block, sizeBytes: size };
}

/** A Secret's key decoded, or undefined. */
export function secretKey(s: Secret, key: string): string | undefined {
  const v = s.data?.[key];
  return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
}

/** CDI's endpoint Secret (secretRef): accessKeyId (user) and secretKey (password). 422 when missing or incomplete. */
export async function endpointCredentials(
  api: Pick<ApiClient, "get">,
  ns: string,
  name: string,
  field: string,
  dvName: string,
): Promise<{ username: string; password: string }> {
  const refuse = (message: string): never => {
    throw invalid(DV_KIND, dvName, [{ type: "FieldValueInvalid", field, message }]);
  };
  const s = await api.get<Secret & { metadata: { name?: string } }>(refs.secrets, ns, name).catch((e: unknown) => {
    if (isStatusError(e) && e.code === 404) return refuse(`Secret "${name}" not found in namespace ${ns}`);
    throw e;
  });
  const username = secretKey(s, "accessKeyId");
  const password = secretKey(s, "secretKey");
  if (username === undefined || password === undefined) {
    return refuse(`Secret "${name}" must have the keys accessKeyId and secretKey`);
  }
  return { username, password };
}

/** CDI's certConfigMap: every value of the ConfigMap, concatenated, is the PEM CA bundle to trust. */
export async function caBundle(
  api: Pick<ApiClient, "get">,
  ns: string,
  name: string,
  field: string,
  dvName: string,
): Promise<string> {
  const cm = await api
    .get<ConfigMap & { metadata: { name?: string } }>(refs.configMaps, ns, name)
    .catch((e: unknown) => {
      if (isStatusError(e) && e.code === 404) {
        throw invalid(DV_KIND, dvName, [
          { type: "FieldValueInvalid", field, message: `ConfigMap "${name}" not found in namespace ${ns}` },
        ]);
      }
      throw e;
    });
  return Object.values(cm.data ?? {}).join("\n");
}

/** Writes a file atomically with the given mode (secrets 0600). */
export async function writePrivate(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp`;
  await makePrivateDir(dirname(path));
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}

/**
 * Makes `dir` 0700 and its missing ancestors with the default mode. Only the pod's own dir is private: a recursive
 * 0700 mkdir gives every directory it creates that mode, so a worker that is the node's first pod made the node's
 * pods/ dir 0700, and QEMU (another user) could then never reach a launcher pod's disks below it.
 */
export async function makePrivateDir(dir: string): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/** The worker's files below its pod directory. */
export function workerPaths(podDir: string) {
  return {
    job: join(podDir, "job.json"),
    progress: join(podDir, "progress"),
    terminationLog: join(podDir, "termination-log"),
    scratch: join(podDir, "scratch"),
    sockets: join(podDir, "sockets"),
    egressSocket: join(podDir, "sockets", "egress.sock"),
    auth: join(podDir, "auth.json"),
    ca: join(podDir, "ca.pem"),
  };
}

/** Writes job.json (and makes the pod's scratch and sockets directories). */
export async function writeJob(podDir: string, job: WorkerJob): Promise<string> {
  const p = workerPaths(podDir);
  await makePrivateDir(podDir);
  await mkdir(p.scratch, { recursive: true, mode: 0o700 });
  await mkdir(p.sockets, { recursive: true, mode: 0o700 });
  await writePrivate(p.job, `${JSON.stringify(job, null, 2)}\n`, 0o600);
  return p.job;
}
