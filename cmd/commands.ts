// Subcommand registry for `tsvirt`. Each entry lives in its own file under cmd/ and imports its component lazily.
import type { Command } from "commander";
import { registerController } from "./controller.js";

export function registerCommands(program: Command): void {
  registerController(program);
  // Components add their subcommands here (api, controller, handler, launcher, up, image).
}
