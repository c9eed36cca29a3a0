// virtctl unpause vm|vmi NAME [--dry-run]: PUT .../virtualmachineinstances/NAME/unpause.
import type { Command } from "commander";
import { type Client, resources } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";
import { dryRunField, pauseTarget, SUBRESOURCE_API_VERSION } from "./options.js";

export async function unpause(
  client: Client,
  ns: string,
  kind: string,
  name: string,
  f: { dryRun?: boolean },
  io: Io,
): Promise<void> {
  if (pauseTarget(kind) === "vm") await client.get(resources.vms, ns, name);
  await client.putSubresource(resources.vmis, ns, name, "unpause", {
    kind: "UnpauseOptions",
    apiVersion: SUBRESOURCE_API_VERSION,
    ...dryRunField(f.dryRun),
  });
  io.out(`VMI ${name} was scheduled to unpause\n`);
}

export function registerUnpause(program: Command, ctx: VerbContext): void {
  program
    .command("unpause")
    .argument("<kind>", "vm or vmi")
    .argument("<name>", "the VM or VMI")
    .description("Unpause a virtual machine.")
    .option("--dry-run", "send the request with dryRun=All; nothing changes")
    .action(async (kind: string, name: string, f: { dryRun?: boolean }, cmd: Command) =>
      runVerb(ctx, cmd, (s) => unpause(s.client, s.namespace, kind, name, f, ctx.io)),
    );
}
