// virtctl reset VMI: PUT .../virtualmachineinstances/VMI/reset (a hard reset of the domain; same pod, same QEMU).
import type { Command } from "commander";
import { type Client, resources } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";

export async function reset(client: Client, ns: string, name: string, io: Io): Promise<void> {
  await client.putSubresource(resources.vmis, ns, name, "reset", {});
  io.out(`VMI ${name} was scheduled to reset\n`);
}

export function registerReset(program: Command, ctx: VerbContext): void {
  program
    .command("reset")
    .argument("<vmi>", "the VirtualMachineInstance")
    .description("Reset a virtual machine instance (a hard reset, like pressing the reset button).")
    .action(async (name: string, _f: unknown, cmd: Command) =>
      runVerb(ctx, cmd, (s) => reset(s.client, s.namespace, name, ctx.io)),
    );
}
