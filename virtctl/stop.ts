// virtctl stop VM [--grace-period N --force] [--dry-run]: PUT .../virtualmachines/VM/stop with StopOptions.
import type { Command } from "commander";
import { type Client, resources } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";
import { dryRunField, parseGracePeriod, SUBRESOURCE_API_VERSION } from "./options.js";

export interface StopFlags {
  gracePeriod?: string;
  force?: boolean;
  dryRun?: boolean;
}

export async function stop(client: Client, ns: string, name: string, f: StopFlags, io: Io): Promise<void> {
  const body: Record<string, unknown> = {
    kind: "StopOptions",
    apiVersion: SUBRESOURCE_API_VERSION,
    ...dryRunField(f.dryRun),
  };
  if (f.gracePeriod !== undefined) {
    if (!f.force) throw new Error("Must both use --force=true and set --grace-period.");
    body.gracePeriod = parseGracePeriod(f.gracePeriod);
  }
  await client.putSubresource(resources.vms, ns, name, "stop", body);
  io.out(`VM ${name} was scheduled to stop\n`);
}

export function registerStop(program: Command, ctx: VerbContext): void {
  program
    .command("stop")
    .argument("<vm>", "the VirtualMachine")
    .description("Stop a virtual machine.")
    .option("--grace-period <seconds>", "override the VMI's termination grace period (needs --force)")
    .option("--force", "force the stop (with --grace-period)")
    .option("--dry-run", "send the request with dryRun=All; nothing changes")
    .action(async (name: string, f: StopFlags, cmd: Command) =>
      runVerb(ctx, cmd, (s) => stop(s.client, s.namespace, name, f, ctx.io)),
    );
}
