// The I/O shell around the converter: turn what the node prepared into the converter's context, creating what the
// launcher owns on the way (qcow2 overlays over read-only base images, emptyDisks, NoCloud ISOs).
import { execFile } from "node:child_process";
import { chown, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import type { VirtualMachineInstance } from "../api/index.js";
import { invalid, type StatusCause } from "../lib/errors.js";
import {
  buildNoCloudIso,
  type ConverterContext,
  noCloudFiles,
  type PreparedVolume,
  parseQuantity,
  vmiToDomainXml,
  volumeKind,
} from "./converter/index.js";
import type { NodePrepared } from "./protocol.js";
import type { DomainBuilder } from "./server.js";

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, out, stderr) =>
      err ? reject(new Error(`${cmd}: ${stderr.trim() || err.message}`)) : resolve(out),
    );
  });
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface BuilderOptions {
  /** Directory QEMU's user owns: serial/VNC sockets, overlays, emptyDisks, ISOs. */
  qemuDir: string;
  kvm: boolean;
  serialSocket: string;
  owner: { uid: number; gid: number };
}

/** Everything under qemuDir that QEMU must write is created here and handed to QEMU's user. */
export function makeBuilder(o: BuilderOptions): DomainBuilder {
  return async (raw, prepared: NodePrepared | undefined) => {
    const vmi = raw as VirtualMachineInstance;
    const volumes: PreparedVolume[] = [];
    const byName: Record<string, PreparedVolume> = {};
    const causes: StatusCause[] = [];
    for (const [i, v] of (vmi.spec?.volumes ?? []).entries()) {
      const field = `spec.volumes[${i}]`;
      if (!SAFE_NAME.test(v.name)) {
        causes.push({ type: "FieldValueInvalid", field: `${field}.name`, message: "invalid volume name" });
        continue;
      }
      const kind = volumeKind(v);
      const dir = path.join(o.qemuDir, v.name);
      const nodePath = prepared?.volumePaths?.[v.name];
      if (kind === "containerDisk" || kind === "ephemeral") {
        const base = prepared?.baseImages?.[v.name] ?? nodePath;
        if (!base) {
          causes.push({
            type: "FieldValueRequired",
            field: `${field}.${kind}`,
            message: `the node prepared no base image for "${v.name}"`,
          });
          continue;
        }
        const block = prepared?.blockVolumes?.includes(v.name) ?? false;
        const info = block
          ? { format: "raw" }
          : (JSON.parse(await run("qemu-img", ["info", "--output=json", "-U", base])) as { format?: string });
        const format = info.format === "qcow2" ? "qcow2" : "raw";
        await mkdir(dir, { recursive: true });
        const overlay = path.join(dir, "overlay.qcow2");
        await rm(overlay, { force: true });
        await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", format, "-b", base, overlay]);
        await chown(dir, o.owner.uid, o.owner.gid);
        await chown(overlay, o.owner.uid, o.owner.gid);
        byName[v.name] = {
          type: "overlay",
          path: overlay,
          backing: block ? { type: "block", path: base } : { type: "file", path: base, format },
        };
      } else if (kind === "emptyDisk") {
        const bytes = parseQuantity(String(v.emptyDisk?.capacity ?? "0"));
        await mkdir(dir, { recursive: true });
        const img = path.join(dir, "disk.qcow2");
        await rm(img, { force: true });
        await run("qemu-img", ["create", "-q", "-f", "qcow2", img, String(bytes)]);
        await chown(dir, o.owner.uid, o.owner.gid);
        await chown(img, o.owner.uid, o.owner.gid);
        byName[v.name] = { type: "file", path: img, format: "qcow2" };
      } else if (kind === "cloudInitNoCloud") {
        await mkdir(dir, { recursive: true });
        const iso = path.join(dir, "noCloud.iso");
        await buildNoCloudIso(noCloudFiles(vmi, v, {}, `${field}.cloudInitNoCloud`), iso);
        byName[v.name] = { type: "file", path: iso, format: "raw" };
      } else if (nodePath) {
        byName[v.name] = prepared?.blockVolumes?.includes(v.name)
          ? { type: "block", path: nodePath }
          : { type: "file", path: nodePath, format: "raw" };
      }
      // anything else: the converter names the field it cannot serve
      const p = byName[v.name];
      if (p) volumes.push(p);
    }
    if (causes.length) {
      throw invalid({ group: "kubevirt.io", kind: "VirtualMachineInstance" }, vmi.metadata?.name ?? "", causes);
    }
    const interfaces: ConverterContext["interfaces"] = Object.fromEntries(
      Object.entries(prepared?.taps ?? {}).map(([n, tap]) => [n, { tap }]),
    );
    const ctx: ConverterContext = {
      arch: "x86_64",
      kvm: o.kvm,
      volumes: byName,
      interfaces,
      serialSocket: o.serialSocket,
      vncSocket: path.join(o.qemuDir, "vnc"),
      guestAgentSocket: path.join(o.qemuDir, "qga"),
      ...(prepared?.kernelBoot ? { kernelBoot: prepared.kernelBoot } : {}),
    };
    return vmiToDomainXml(vmi, ctx);
  };
}
