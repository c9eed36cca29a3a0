// virtctl soft-reboot|reset VMI: PUT .../virtualmachineinstances/VMI/{softreboot|reset}. Both act on the running
// domain in its pod (ACPI/guest-agent reboot, or a hard reset of the same QEMU) and differ only in the subresource.
import type { Command } from "commander";
import { resources } from "../client/index.js";
import { runVerb, type VerbContext } from "./context.js";

const actions = [
  { command: "soft-reboot", subresource: "softreboot", description: "Soft reboot a virtual machine instance." },
  {
    command: "reset",
    subresource: "reset",
    description: "Reset a virtual machine instance (a hard reset, like pressing the reset button).",
  },
] as const;

export function registerVmiActions(program: Command, ctx: VerbContext): void {
  for (const a of actions) {
    program
      .command(a.command)
      .argument("<vmi>", "the VirtualMachineInstance")
      .description(a.description)
      .action(async (name: string, _f: unknown, cmd: Command) =>
        runVerb(ctx, cmd, async (s) => {
          await s.client.putSubresource(resources.vmis, s.namespace, name, a.subresource, {});
          ctx.io.out(`VMI ${name} was scheduled to ${a.subresource}\n`);
        }),
      );
  }
}
