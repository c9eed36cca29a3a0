// Subcommand registry for `tsvirt`. Each entry lives in its own file under cmd/ and imports its component lazily.
import type { Command } from "commander";
import { registerLauncher } from "./launcher.js";

export function registerCommands(_program: Command): void {
  // Components add their subcommands here (api, controller, handler, launcher, up, image).
  registerLauncher(_program);
}
