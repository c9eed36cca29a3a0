// virtctl soft-reboot VMI: PUT .../virtualmachineinstances/VMI/softreboot (ACPI or guest agent; same pod).
import type { Command } from "commander";
import { type Client, resources } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";

export async function softReboot(client: Client, ns: string, name: string, io: Io): Promise<void> {
  await client.putSubresource(resources.vmis, ns, name, "softreboot", {});
  io.out(`VMI ${name} was scheduled to softreboot\n`);
}

export function registerSoftReboot(program: Command, ctx: VerbContext): void {
  program
    .command("soft-reboot")
    .argument("<vmi>", "the VirtualMachineInstance")
    .description("Soft reboot a virtual machine instance.")
    .action(async (name: string, _f: unknown, cmd: Command) =>
      runVerb(ctx, cmd, (s) => softReboot(s.client, s.namespace, name, ctx.io)),
    );
}
