// Subcommand registry for `tsvirt`. Each entry lives in its own file under cmd/ and imports its component lazily.
import type { Command } from "commander";
import { registerApi } from "./api.js";

export function registerCommands(program: Command): void {
  registerApi(program);
  // Components add their subcommands here (api, controller, handler, launcher, up, image).
}
