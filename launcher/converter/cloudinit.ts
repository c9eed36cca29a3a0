// cloud-init: the NoCloud and ConfigDrive data sources' files (pure) and an ISO builder (xorriso through execFile).
import { execFile } from "node:child_process";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { VirtualMachineInstance, Volume } from "../../api/index.js";
import { invalid } from "../../lib/errors.js";

const run = promisify(execFile);

export interface NoCloudFiles {
  "meta-data": string;
  "user-data": string;
  "network-config"?: string;
}

/** Secret data the node resolved for userDataSecretRef / networkDataSecretRef (keys userdata/networkdata). */
export interface CloudInitSecrets {
  userData?: string;
  networkData?: string;
}

function decodeB64(field: string, name: string, b64: string): string {
  if (!/^[A-Za-z0-9+/=\s]*$/.test(b64)) {
    throw invalid({ group: "kubevirt.io", kind: "VirtualMachineInstance" }, name, [
      { type: "FieldValueInvalid", field, message: "not valid base64" },
    ]);
  }
  return Buffer.from(b64, "base64").toString("utf8");
}

/**
 * The NoCloud files for one cloudInitNoCloud volume, as KubeVirt writes them: meta-data carries the instance id
 * (`{name}.{namespace}`) and local hostname; user-data and network-config come from the volume (inline, base64, or
 * the secret the node resolved).
 */
export function noCloudFiles(
  vmi: VirtualMachineInstance,
  volume: Volume,
  secrets: CloudInitSecrets = {},
  field = "spec.volumes[].cloudInitNoCloud",
): NoCloudFiles {
  const src = volume.cloudInitNoCloud ?? volume.cloudInitConfigDrive;
  const name = vmi.metadata?.name ?? "";
  const namespace = vmi.metadata?.namespace || "default";
  if (!src) {
    throw invalid({ group: "kubevirt.io", kind: "VirtualMachineInstance" }, name, [
      { type: "FieldValueRequired", field, message: `volume "${volume.name}" is not a cloud-init volume` },
    ]);
  }
  const userData =
    src.userData ??
    (src.userDataBase64 !== undefined ? decodeB64(`${field}.userDataBase64`, name, src.userDataBase64) : undefined) ??
    (src.secretRef ? secrets.userData : undefined);
  const networkData =
    src.networkData ??
    (src.networkDataBase64 !== undefined
      ? decodeB64(`${field}.networkDataBase64`, name, src.networkDataBase64)
      : undefined) ??
    (src.networkDataSecretRef ? secrets.networkData : undefined);
  if (src.secretRef && secrets.userData === undefined && userData === undefined) {
    throw invalid({ group: "kubevirt.io", kind: "VirtualMachineInstance" }, name, [
      { type: "FieldValueRequired", field: `${field}.secretRef`, message: "the user-data secret was not resolved" },
    ]);
  }
  const hostname = vmi.spec.hostname ?? name;
  const files: NoCloudFiles = {
    "meta-data": `instance-id: ${name}.${namespace}\nlocal-hostname: ${hostname}\n`,
    "user-data": userData ?? "",
  };
  if (networkData !== undefined) files["network-config"] = networkData;
  return files;
}

/**
 * The ConfigDrive (OpenStack config-2) files for one cloudInitConfigDrive volume, as KubeVirt writes them:
 * openstack/latest/meta_data.json (instance id, uuid, hostname), user_data and network_data.json when given.
 */
export function configDriveFiles(
  vmi: VirtualMachineInstance,
  volume: Volume,
  secrets: CloudInitSecrets = {},
  field = "spec.volumes[].cloudInitConfigDrive",
): Record<string, string> {
  const nc = noCloudFiles(vmi, volume, secrets, field);
  const name = vmi.metadata?.name ?? "";
  const namespace = vmi.metadata?.namespace || "default";
  const meta = {
    instance_id: `${name}.${namespace}`,
    uuid: vmi.metadata?.uid ?? "",
    hostname: vmi.spec.hostname ?? name,
  };
  const files: Record<string, string> = {
    "openstack/latest/meta_data.json": `${JSON.stringify(meta)}\n`,
    "openstack/latest/user_data": nc["user-data"],
  };
  if (nc["network-config"] !== undefined) files["openstack/latest/network_data.json"] = nc["network-config"];
  return files;
}

/** ISO volume labels: NoCloud, ConfigDrive, and KubeVirt's config volumes (configMap, secret, ...). */
export const ISO_LABELS = { noCloud: "cidata", configDrive: "config-2", config: "cfgdata" } as const;

/**
 * Writes the files (relative path → content; subdirectories allowed) into an ISO 9660 image with the volume label
 * (Joliet + Rock Ridge), atomically. Paths are checked: no absolute path or `..` reaches the image builder.
 */
export async function buildIso(
  files: Readonly<Record<string, string | Buffer>>,
  label: string,
  isoPath: string,
): Promise<void> {
  for (const n of Object.keys(files)) {
    if (!safeRelativePath(n)) throw new Error(`refusing ISO file path "${n}"`);
  }
  const dir = await mkdtemp(join(dirname(isoPath), ".iso-"));
  try {
    const grafts: string[] = [];
    let i = 0;
    for (const [n, content] of Object.entries(files)) {
      const local = join(dir, `f${i++}`);
      await writeFile(local, content, { mode: 0o644 });
      // graft-points: "=" and "\\" in a name are escaped with a backslash.
      grafts.push(`/${n.replace(/[\\=]/g, "\\$&")}=${local}`);
    }
    const tmp = `${isoPath}.tmp`;
    await run("xorriso", ["-as", "mkisofs", "-quiet", "-o", tmp, "-V", label, "-J", "-R", "-graft-points", ...grafts], {
      maxBuffer: 4 * 1024 * 1024,
    });
    await rename(tmp, isoPath);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A relative path inside its directory: no leading "/", no "." or ".." component, no empty component. */
export function safeRelativePath(p: string): boolean {
  if (p === "" || p.startsWith("/") || p.length > 1024 || p.includes("\0")) return false;
  return p.split("/").every((c) => c !== "" && c !== "." && c !== "..");
}
