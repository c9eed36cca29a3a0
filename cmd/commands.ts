// Subcommand registry for `tsvirt`. Each entry lives in its own file under cmd/ and imports its component lazily.
import type { Command } from "commander";
import { registerApi } from "./api.js";
import { registerCloneSource } from "./clonesource.js";
import { registerController } from "./controller.js";
import { registerHandler } from "./handler.js";
import { registerImporter } from "./importer.js";
import { registerLauncher } from "./launcher.js";
import { registerUp } from "./up.js";
import { registerUploadServer } from "./uploadserver.js";

export function registerCommands(program: Command): void {
  registerApi(program);

  registerController(program);

  registerLauncher(program);

  registerHandler(program);

  registerImporter(program);

  registerUploadServer(program);

  registerCloneSource(program);

  registerUp(program);

  program
    .command("image")
    .description("build, push and pull containerDisk images (tsvirt image --help)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[args...]")
    .action(async (args: string[]) => (await import("./image.js")).runImage(args));
}
