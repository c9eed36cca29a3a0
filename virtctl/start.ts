// virtctl start VM [--paused] [--dry-run]: PUT .../virtualmachines/VM/start with StartOptions.
import type { Command } from "commander";
import { type Client, resources } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";
import { dryRunField, SUBRESOURCE_API_VERSION } from "./options.js";

export interface StartFlags {
  paused?: boolean;
  dryRun?: boolean;
}

export async function start(client: Client, ns: string, name: string, f: StartFlags, io: Io): Promise<void> {
  const body = {
    kind: "StartOptions",
    apiVersion: SUBRESOURCE_API_VERSION,
    paused: f.paused === true,
    ...dryRunField(f.dryRun),
  };
  await client.putSubresource(resources.vms, ns, name, "start", body);
  io.out(`VM ${name} was scheduled to start\n`);
}

export function registerStart(program: Command, ctx: VerbContext): void {
  program
    .command("start")
    .argument("<vm>", "the VirtualMachine")
    .description("Start a virtual machine.")
    .option("--paused", "start the VM paused")
    .option("--dry-run", "send the request with dryRun=All; nothing changes")
    .action(async (name: string, f: StartFlags, cmd: Command) =>
      runVerb(ctx, cmd, (s) => start(s.client, s.namespace, name, f, ctx.io)),
    );
}
