// virtctl's command tree. cmd/virtctl.ts wires it to the process; tests build it with a fake session and io.
import { Command } from "commander";
import { type ConsoleStreams, registerConsole } from "./console.js";
import { processIo, restSession, type VerbContext } from "./context.js";
import { registerCreate } from "./create-vm.js";
import { registerImageUpload } from "./image-upload.js";
import { registerMigrate } from "./migrate.js";
import { registerPause } from "./pause.js";
import { registerRecover } from "./recover.js";
import { registerRestart } from "./restart.js";
import { registerStart } from "./start.js";
import { registerStop } from "./stop.js";
import { registerUnpause } from "./unpause.js";
import { registerVersion } from "./version.js";
import { registerVmiActions } from "./vmi-action.js";
import { registerVnc } from "./vnc.js";

export { consoleSession, consoleUrl } from "./console.js";
export type { GlobalOptions, Io, Session, SessionFactory, VerbContext } from "./context.js";
export { createVm } from "./create-vm.js";

export function buildProgram(ctx: VerbContext, streams?: () => ConsoleStreams): Command {
  const program = new Command("virtctl")
    .description("virtctl controls virtual machine related operations on your kubernetes cluster.")
    .option("--kubeconfig <path>", "path to the kubeconfig file to use for CLI requests")
    .option("-n, --namespace <ns>", "the namespace scope for this CLI request")
    .option("--context <name>", "the name of the kubeconfig context to use")
    .option("-s, --server <url>", "the address and port of the Kubernetes API server")
    .showSuggestionAfterError()
    .configureOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) });
  registerStart(program, ctx);
  registerStop(program, ctx);
  registerRestart(program, ctx);
  registerMigrate(program, ctx);
  registerPause(program, ctx);
  registerUnpause(program, ctx);
  registerVmiActions(program, ctx);
  registerConsole(program, ctx, streams ?? (() => ({ stdin: process.stdin, stdout: process.stdout, io: ctx.io })));
  registerVnc(program, ctx);
  registerCreate(program, ctx);
  registerRecover(program, ctx);
  registerVersion(program, ctx);
  registerImageUpload(program, ctx, () => process.stdout.isTTY === true);
  return program;
}

export function processContext(): VerbContext {
  return {
    io: processIo,
    session: restSession,
    exit: (code) => {
      process.exitCode = code;
    },
  };
}
