// `tsvirt uploadserver --job FILE`: one DataVolume's upload server (CDI's cdi-upload-server), started by the node
// agent in an upload pod. No API access: the job file says where the data goes.
import type { Command } from "commander";

export function registerUploadServer(program: Command): void {
  program
    .command("uploadserver")
    .description("serve one DataVolume's upload on its pod's socket (run by the node agent in an upload pod)")
    .requiredOption("--job <path>", "the job file the node agent wrote (<pod dir>/job.json)")
    .action(async (o: { job: string }) => {
      const { createLogger } = await import("../lib/log.js");
      const { runUploadServerCli } = await import("../storage/upload/index.js");
      const log = createLogger({ component: "cdi-upload-server" }, { write: (l) => process.stdout.write(l) });
      process.exitCode = await runUploadServerCli(o.job, log);
    });
}
