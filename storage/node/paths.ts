// Where a local volume lives on its node: <data dir>/volumes/<pv name>/disk.img (KubeVirt's disk.img convention).
// Pure: a PV name is checked before it becomes a path, and the result is checked to stay below the data dir.
import { isAbsolute, join, relative, resolve } from "node:path";

export const VOLUMES_DIR = "volumes";
export const DISK_IMAGE = "disk.img";

/** A PV name as Kubernetes allows it (DNS-1123 subdomain): no slash, no "..", nothing a path could escape with. */
const PV_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export class VolumePathError extends Error {}

/** Whether `child` is `parent` or below it (both resolved). */
export function isWithin(parent: string, child: string): boolean {
  const rel = relative(resolve(parent), resolve(child));
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

export interface VolumePaths {
  /** <data dir>/volumes */
  root: string;
  /** <data dir>/volumes/<pv> */
  dir: string;
  /** <data dir>/volumes/<pv>/disk.img: the guest's disk (Filesystem) or the loop device's backing file (Block). */
  image: string;
}

export function volumePaths(dataDir: string, pvName: string): VolumePaths {
  if (!isAbsolute(dataDir)) throw new VolumePathError(`data dir ${JSON.stringify(dataDir)} is not absolute`);
  if (pvName.length > 253 || !PV_NAME.test(pvName)) {
    throw new VolumePathError(`${JSON.stringify(pvName)} is not a valid PersistentVolume name`);
  }
  const root = join(resolve(dataDir), VOLUMES_DIR);
  const dir = join(root, pvName);
  const image = join(dir, DISK_IMAGE);
  if (!isWithin(root, image) || resolve(dir) === root) {
    throw new VolumePathError(`volume ${pvName} would leave ${root}`);
  }
  return { root, dir, image };
}

/** The PV name a path below <data dir>/volumes belongs to (undefined: not a volume's file). */
export function volumeOfPath(dataDir: string, path: string): string | undefined {
  const root = join(resolve(dataDir), VOLUMES_DIR);
  if (!isWithin(root, path)) return undefined;
  const first = relative(root, resolve(path)).split("/")[0];
  return first && PV_NAME.test(first) ? first : undefined;
}
