// virtctl migrate VM [--addedNodeSelector k=v,...] [--dry-run]: PUT .../virtualmachines/VM/migrate with
// MigrateOptions (the API creates the VirtualMachineInstanceMigration). virtctl migrate-cancel VM: deletes the VMI's
// migration that is not final yet, found by the label kubevirt.io/vmi-name (KubeVirt's pkg/virtctl/vm/migrate*.go).
import type { Command } from "commander";
import { type Client, resources, type VirtualMachineInstanceMigration } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";
import { dryRunField, SUBRESOURCE_API_VERSION } from "./options.js";

export interface MigrateFlags {
  addedNodeSelector?: string;
  dryRun?: boolean;
}

/** `k=v,k2=v2` (cobra's StringToString) as a map; a part without `=` or an empty key is an error. */
export function parseNodeSelector(v: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of v.split(",")) {
    if (part.trim() === "") continue;
    const i = part.indexOf("=");
    if (i <= 0)
      throw new Error(`invalid argument "${v}" for "--addedNodeSelector" flag: ${part} must be formatted as key=value`);
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

export async function migrate(client: Client, ns: string, name: string, f: MigrateFlags, io: Io): Promise<void> {
  const body: Record<string, unknown> = {
    kind: "MigrateOptions",
    apiVersion: SUBRESOURCE_API_VERSION,
    ...dryRunField(f.dryRun),
  };
  if (f.addedNodeSelector !== undefined) body.addedNodeSelector = parseNodeSelector(f.addedNodeSelector);
  await client.putSubresource(resources.vms, ns, name, "migrate", body);
  io.out(`VM ${name} was scheduled to migrate\n`);
}

export async function migrateCancel(client: Client, ns: string, name: string, io: Io): Promise<void> {
  // (loaded here, not at every virtctl start: api/ is most of virtctl's start-up)
  const { Migration } = await import("../api/index.js");
  const list = await client.list<VirtualMachineInstanceMigration>(resources.vmims, ns, {
    labelSelector: `${Migration.vmiNameLabel}=${name}`,
  });
  const active = list.items.find(
    (m) => m.status?.phase !== "Succeeded" && m.status?.phase !== "Failed" && !m.metadata.deletionTimestamp,
  );
  if (!active) throw new Error(`Found no migration to cancel for ${name}`);
  await client.delete(resources.vmims, ns, active.metadata.name!);
  io.out(`VM ${name} was scheduled to migrate-cancel\n`);
}

export function registerMigrate(program: Command, ctx: VerbContext): void {
  program
    .command("migrate")
    .argument("<vm>", "the VirtualMachine")
    .description("Migrate a virtual machine to another node.")
    .option("--addedNodeSelector <k=v,...>", "node labels the target node must also carry (narrows the choice)")
    .option("--dry-run", "send the request with dryRun=All; nothing changes")
    .action(async (name: string, f: MigrateFlags, cmd: Command) =>
      runVerb(ctx, cmd, (s) => migrate(s.client, s.namespace, name, f, ctx.io)),
    );
  program
    .command("migrate-cancel")
    .argument("<vm>", "the VirtualMachine")
    .description("Cancel the migration of a virtual machine (deletes its migration that has not finished).")
    .action(async (name: string, _f: unknown, cmd: Command) =>
      runVerb(ctx, cmd, (s) => migrateCancel(s.client, s.namespace, name, ctx.io)),
    );
}
