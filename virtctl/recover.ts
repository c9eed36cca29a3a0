// virtctl recover VM | --list: tsvirt's retained disks (issue 11). A deleted VM's dataVolumeTemplate DataVolumes stay,
// labelled tsvirt.io/retained-from-vm=<vm> and annotated with its uid and last spec; recover creates the VM again from
// that spec, and the VM controller adopts the DataVolumes (same names, same data, no new import).
import type { Command } from "commander";
import type { RetainedDisks as Keys } from "../api/index.js";

/** api/'s RetainedDisks keys, loaded when a recover verb runs (not at every virtctl start: api/ is most of it). */
async function retainedKeys(): Promise<typeof Keys> {
  return (await import("../api/index.js")).RetainedDisks;
}

import { type Client, type DataVolume, type KObject, resources, type VirtualMachine } from "../client/index.js";
import { isNotFound, statusError } from "../lib/errors.js";
import { type Io, runVerb, type VerbContext } from "./context.js";

/** A deleted VM as its retained disks remember it. */
export interface RetainedVm {
  name: string;
  uid: string;
  /** The VM's last spec, when the annotation parses. */
  spec?: VirtualMachine["spec"];
  /** DataVolume names, sorted. */
  disks: string[];
}

/** Groups retained DataVolumes by the VM (name and uid) they were retained from. Pure. */
export function retainedVms(dvs: readonly DataVolume[], RetainedDisks: typeof Keys): RetainedVm[] {
  const byKey = new Map<string, RetainedVm>();
  for (const dv of dvs) {
    const name = dv.metadata.labels?.[RetainedDisks.fromVmLabel];
    if (!name) continue;
    const uid = dv.metadata.annotations?.[RetainedDisks.uidAnnotation] ?? "";
    const key = `${name}/${uid}`;
    const vm = byKey.get(key) ?? { name, uid, disks: [] };
    vm.disks.push(dv.metadata.name ?? "");
    if (!vm.spec) {
      try {
        const spec = JSON.parse(dv.metadata.annotations?.[RetainedDisks.specAnnotation] ?? "");
        if (spec && typeof spec === "object" && typeof spec.template === "object") vm.spec = spec;
      } catch {
        // a damaged annotation: listed, not recoverable from this disk
      }
    }
    byKey.set(key, vm);
  }
  const out = [...byKey.values()];
  for (const v of out) v.disks.sort();
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.uid.localeCompare(b.uid));
}

async function listRetained(
  client: Client,
  RetainedDisks: typeof Keys,
  ns: string,
  vm?: string,
): Promise<DataVolume[]> {
  const labelSelector = vm ? `${RetainedDisks.fromVmLabel}=${vm}` : RetainedDisks.fromVmLabel;
  return (await client.list<DataVolume>(resources.datavolumes, ns, { labelSelector })).items;
}

export async function recoverList(client: Client, ns: string, io: Io): Promise<void> {
  const keys = await retainedKeys();
  const vms = retainedVms(await listRetained(client, keys, ns), keys);
  if (vms.length === 0) {
    io.out(`No retained disks in namespace ${ns}.\n`);
    return;
  }
  const rows = [["VM", "UID", "DATAVOLUMES"], ...vms.map((v) => [v.name, v.uid, v.disks.join(",")])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) io.out(`${r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]! + 3) : c)).join("")}\n`);
}

export interface RecoverFlags {
  list?: boolean;
  uid?: string;
}

export async function recover(client: Client, ns: string, name: string, f: RecoverFlags, io: Io): Promise<void> {
  const existing = await client.get(resources.vms, ns, name).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  if (existing) {
    throw statusError(
      409,
      "AlreadyExists",
      `a VirtualMachine named ${name} already exists in namespace ${ns}: recover brings back only a deleted VM (delete or rename the existing one first)`,
    );
  }
  const RetainedDisks = await retainedKeys();
  const candidates = retainedVms(await listRetained(client, RetainedDisks, ns, name), RetainedDisks).filter(
    (v) => !f.uid || v.uid === f.uid,
  );
  if (candidates.length === 0) {
    throw statusError(
      404,
      "NotFound",
      `no disks retained from a VM named ${name}${f.uid ? ` (uid ${f.uid})` : ""} in namespace ${ns} (see virtctl recover --list)`,
    );
  }
  if (candidates.length > 1) {
    throw statusError(
      409,
      "Conflict",
      `disks of ${candidates.length} deleted VMs named ${name} are retained (uids ${candidates.map((c) => c.uid).join(", ")}): choose one with --uid`,
    );
  }
  const from = candidates[0]!;
  if (!from.spec) {
    throw statusError(
      422,
      "Invalid",
      `the retained disks of VM ${name} (${from.disks.join(", ")}) carry no readable ${RetainedDisks.specAnnotation}`,
    );
  }
  const vm: VirtualMachine & KObject = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace: ns },
    spec: from.spec,
  };
  await client.create(resources.vms, ns, vm);
  io.out(`VM ${name} recovered from its retained disks (${from.disks.join(", ")})\n`);
}

export function registerRecover(program: Command, ctx: VerbContext): void {
  program
    .command("recover")
    .argument("[vm]", "the deleted VirtualMachine whose retained disks bring it back")
    .description("Recreate a deleted virtual machine on its retained disks, or list the retained disks (--list).")
    .option("--list", "list the deleted VMs whose disks are retained, with their DataVolumes")
    .option("--uid <uid>", "which deleted VM, when disks of several VMs of that name are retained")
    .action(async (name: string | undefined, f: RecoverFlags, cmd: Command) =>
      runVerb(ctx, cmd, async (s) => {
        if (f.list) return recoverList(s.client, s.namespace, ctx.io);
        if (!name) throw new Error("a VM name is required (or --list)");
        return recover(s.client, s.namespace, name, f, ctx.io);
      }),
    );
}
