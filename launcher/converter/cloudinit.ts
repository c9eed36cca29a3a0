// cloudInitNoCloud: the NoCloud data source's files (pure) and an ISO builder (xorriso through execFile).
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
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

/** Writes the files into an ISO 9660 image labelled `cidata` (Joliet + Rock Ridge), atomically. */
export async function buildNoCloudIso(files: NoCloudFiles, isoPath: string): Promise<void> {
  const dir = await mkdtemp(join(dirname(isoPath), ".nocloud-"));
  try {
    const names: string[] = [];
    for (const [n, content] of Object.entries(files)) {
      if (content === undefined) continue;
      await writeFile(join(dir, n), content, { mode: 0o644 });
      names.push(n);
    }
    const tmp = `${isoPath}.tmp`;
    await run(
      "xorriso",
      [
        "-as",
        "mkisofs",
        "-quiet",
        "-o",
        tmp,
        "-V",
        "cidata",
        "-J",
        "-R",
        "-graft-points",
        ...names.map((n) => `${n}=${join(dir, n)}`),
      ],
      { maxBuffer: 4 * 1024 * 1024 },
    );
    await run("mv", ["-f", "--", tmp, isoPath]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
