// `tsvirt clonesource --job FILE`: the clone-source pod's process (CDI's cdi-clone-source), started by the node agent
// on the source volume's node. It has no API access: everything it needs is in the job file the agent wrote.
import { dirname } from "node:path";
import type { Command } from "commander";

export function registerCloneSource(program: Command): void {
  program
    .command("clonesource")
    .description("serve a clone's source volume to its target (run by the node agent in a clone-source pod)")
    .requiredOption("--job <path>", "the job file the node agent wrote (<pod dir>/job.json)")
    .action(async (o: { job: string }) => {
      const { createLogger } = await import("../lib/log.js");
      const { runCloneSourceCli } = await import("../storage/clone/source-main.js");
      const log = createLogger({ component: "cdi-clone-source" }, { write: (l) => process.stdout.write(l) });
      process.exitCode = await runCloneSourceCli(o.job, dirname(o.job), log);
    });
}
