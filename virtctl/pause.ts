// virtctl pause|unpause vm|vmi NAME [--dry-run]: PUT .../virtualmachineinstances/NAME/{pause|unpause}
// (the vm form acts on the VM's VMI). One implementation: the two verbs differ only in the action named.
import type { Command } from "commander";
import { type Client, resources } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";
import { dryRunField, pauseTarget, SUBRESOURCE_API_VERSION } from "./options.js";

type Action = "pause" | "unpause";
const optionsKind: Record<Action, string> = { pause: "PauseOptions", unpause: "UnpauseOptions" };

async function putPauseAction(
  action: Action,
  client: Client,
  ns: string,
  kind: string,
  name: string,
  f: { dryRun?: boolean },
  io: Io,
): Promise<void> {
  if (pauseTarget(kind) === "vm") await client.get(resources.vms, ns, name);
  await client.putSubresource(resources.vmis, ns, name, action, {
    kind: optionsKind[action],
    apiVersion: SUBRESOURCE_API_VERSION,
    ...dryRunField(f.dryRun),
  });
  io.out(`VMI ${name} was scheduled to ${action}\n`);
}

export function pause(client: Client, ns: string, kind: string, name: string, f: { dryRun?: boolean }, io: Io) {
  return putPauseAction("pause", client, ns, kind, name, f, io);
}

export function unpause(client: Client, ns: string, kind: string, name: string, f: { dryRun?: boolean }, io: Io) {
  return putPauseAction("unpause", client, ns, kind, name, f, io);
}

function register(action: Action, description: string, program: Command, ctx: VerbContext): void {
  program
    .command(action)
    .argument("<kind>", "vm or vmi")
    .argument("<name>", "the VM or VMI")
    .description(description)
    .option("--dry-run", "send the request with dryRun=All; nothing changes")
    .action(async (kind: string, name: string, f: { dryRun?: boolean }, cmd: Command) =>
      runVerb(ctx, cmd, (s) => putPauseAction(action, s.client, s.namespace, kind, name, f, ctx.io)),
    );
}

export function registerPause(program: Command, ctx: VerbContext): void {
  register("pause", "Pause a virtual machine.", program, ctx);
}

export function registerUnpause(program: Command, ctx: VerbContext): void {
  register("unpause", "Unpause a virtual machine.", program, ctx);
}
