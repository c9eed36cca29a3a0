// Test fixtures (used by the converter's tests only): KubeVirt's example manifests as VMIs, and a context that
// gives every volume the host path a node would prepare.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import type { VirtualMachineInstance } from "../../api/index.js";
import type { ConverterContext } from "./context.js";
import { contextFor, type NodeFacts } from "./prepare.js";
import { volumeKind } from "./storage.js";

export const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), "testdata");
/** Works from both the sources and dist/ (testdata is not compiled). */
export function testdataDir(): string {
  return TESTDATA.replace(`${join("dist", "launcher")}`, "launcher");
}

type Obj = Record<string, unknown>;

/** The VMI a manifest stands for: a VMI itself, or the template of a VM, a VMIRS, or a pool's VM template. */
export function vmiFromManifest(doc: Obj): VirtualMachineInstance | undefined {
  const kind = doc.kind as string;
  const spec = doc.spec as Obj | undefined;
  const wrap = (tpl: Obj | undefined, meta: Obj): VirtualMachineInstance | undefined =>
    tpl
      ? ({
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachineInstance",
          metadata: { ...((tpl.metadata as Obj) ?? {}), name: (meta.name as string) ?? "vmi" },
          spec: tpl.spec,
        } as VirtualMachineInstance)
      : undefined;
  switch (kind) {
    case "VirtualMachineInstance":
      return doc as unknown as VirtualMachineInstance;
    case "VirtualMachine":
    case "VirtualMachineInstanceReplicaSet":
      return wrap(spec?.template as Obj, doc.metadata as Obj);
    case "VirtualMachinePool": {
      const vmTpl = spec?.virtualMachineTemplate as Obj | undefined;
      return wrap((vmTpl?.spec as Obj | undefined)?.template as Obj, doc.metadata as Obj);
    }
    default:
      return undefined;
  }
}

/** Every example manifest that carries a VMI, with a fixed namespace and uid (deterministic golden files). */
export function exampleVmis(): { file: string; vmi: VirtualMachineInstance }[] {
  const dir = join(testdataDir(), "examples");
  const out: { file: string; vmi: VirtualMachineInstance }[] = [];
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith(".yaml"))
    .sort()) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), "utf8"))) {
      const vmi = vmiFromManifest(d.toJSON() as Obj);
      if (!vmi) continue;
      vmi.metadata = { ...vmi.metadata, namespace: "default", uid: "6a1c5f32-0e7b-4c1e-9a57-3d2f4b8c9e10" };
      out.push({ file: f.replace(/\.yaml$/, ""), vmi });
    }
  }
  return out;
}

/**
 * A context as a node would prepare it under `root` (a pod dir): containerDisks as qcow2 overlays over a base
 * image, PVC/dataVolume as files (or block devices when named in `block`), emptyDisks as qcow2 files, cloud-init
 * and config volumes (whose files the node read) as ISOs; one tap per interface.
 */
export function preparedContext(
  vmi: VirtualMachineInstance,
  root: string,
  opts: { kvm?: boolean; block?: ReadonlySet<string>; baseImage?: string; baseFormat?: "raw" | "qcow2" } = {},
): ConverterContext {
  const containerDisks: Record<string, { path: string; format: "raw" | "qcow2" }> = {};
  const claims: Record<string, { type: "file"; path: string } | { type: "block"; path: string }> = {};
  const files: Record<string, Record<string, string>> = {};
  const taps: Record<string, string> = {};
  const facts: NodeFacts = { kvm: opts.kvm ?? false, containerDisks, claims, files, taps };
  for (const v of vmi.spec.volumes ?? []) {
    switch (volumeKind(v)) {
      case "containerDisk":
        containerDisks[v.name] = {
          path: opts.baseImage ?? join(root, "images", v.name, "disk.qcow2"),
          format: opts.baseFormat ?? "qcow2",
        };
        break;
      case "ephemeral":
      case "persistentVolumeClaim":
      case "dataVolume":
        claims[v.name] = opts.block?.has(v.name)
          ? { type: "block", path: join("/dev", `tsvirt-${v.name}`) }
          : { type: "file", path: join(root, "volumes", v.name, "disk.img") };
        break;
      case "configMap":
      case "secret":
      case "serviceAccount":
      case "downwardAPI":
      case "sysprep":
        files[v.name] = { data: Buffer.from(v.name).toString("base64") };
        break;
      default:
        break;
    }
  }
  (vmi.spec.domain.devices.interfaces ?? []).forEach((i, n) => {
    taps[i.name] = `tap${n}`;
  });
  if (vmi.spec.domain.firmware?.kernelBoot?.container) {
    facts.kernelBoot = { kernel: join(root, "kernel", "vmlinux"), initrd: join(root, "kernel", "initrd.gz") };
  }
  return contextFor(vmi, root, facts);
}
