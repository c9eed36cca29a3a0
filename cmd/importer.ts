// `tsvirt importer --job FILE`: one DataVolume import (CDI's importer), started by the node agent in an importer pod.
// It has no API access: everything it needs is in the job file the agent wrote.
import type { Command } from "commander";

export function registerImporter(program: Command): void {
  program
    .command("importer")
    .description("import a DataVolume's source into its volume (run by the node agent in an importer pod)")
    .requiredOption("--job <path>", "the job file the node agent wrote (<pod dir>/job.json)")
    .action(async (o: { job: string }) => {
      const { createLogger } = await import("../lib/log.js");
      const { runImporterCli } = await import("../storage/importer/main.js");
      const log = createLogger({ component: "cdi-importer" }, { write: (l) => process.stdout.write(l) });
      // Exit at once: the outcome line is written (and the data durable before it); nothing left is worth the
      // wait for the event loop to wind down, and the pod's end is what the DataVolume waits for.
      process.exit(await runImporterCli(o.job, log));
    });
}
