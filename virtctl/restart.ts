// virtctl restart VM [--grace-period N --force] [--dry-run]: PUT .../virtualmachines/VM/restart with RestartOptions.
import type { Command } from "commander";
import { type Client, resources } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";
import { dryRunField, parseGracePeriod, SUBRESOURCE_API_VERSION } from "./options.js";
import type { StopFlags } from "./stop.js";

export async function restart(client: Client, ns: string, name: string, f: StopFlags, io: Io): Promise<void> {
  const body: Record<string, unknown> = {
    kind: "RestartOptions",
    apiVersion: SUBRESOURCE_API_VERSION,
    ...dryRunField(f.dryRun),
  };
  if (f.gracePeriod !== undefined) {
    if (!f.force) throw new Error("Must both use --force=true and set --grace-period.");
    body.gracePeriodSeconds = parseGracePeriod(f.gracePeriod);
  }
  await client.putSubresource(resources.vms, ns, name, "restart", body);
  io.out(`VM ${name} was scheduled to restart\n`);
}

export function registerRestart(program: Command, ctx: VerbContext): void {
  program
    .command("restart")
    .argument("<vm>", "the VirtualMachine")
    .description("Restart a virtual machine (a new VMI and launcher pod).")
    .option("--grace-period <seconds>", "override the VMI's termination grace period (needs --force)")
    .option("--force", "force the restart (with --grace-period)")
    .option("--dry-run", "send the request with dryRun=All; nothing changes")
    .action(async (name: string, f: StopFlags, cmd: Command) =>
      runVerb(ctx, cmd, (s) => restart(s.client, s.namespace, name, f, ctx.io)),
    );
}
