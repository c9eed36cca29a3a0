// `tsvirt controller --kubeconfig PATH`: virt-controller against the API named by the kubeconfig.
import type { Command } from "commander";

export function registerController(program: Command): void {
  program
    .command("controller")
    .description("run virt-controller: VM, VMI, scheduler (embedded mode) and node pod-CIDR reconcilers")
    .option("--kubeconfig <path>", "kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    .option("--threads <n>", "workers per queue", "3")
    .option("--no-scheduler", "do not run the built-in scheduler (a cluster's kube-scheduler binds pods)")
    .action(async (opts: { kubeconfig?: string; threads: string; scheduler: boolean }) => {
      const { loadConfig, RestClient } = await import("../client/index.js");
      const { VirtController } = await import("../controller/index.js");
      const { createLogger } = await import("../lib/log.js");
      const log = createLogger({ component: "virt-controller" });
      const client = new RestClient({
        ...loadConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
        userAgent: "virt-controller",
      });
      const ctrl = new VirtController({ client, log, threads: Number(opts.threads) || 3, scheduler: opts.scheduler });
      let stopping = false;
      const stop = async (sig: string) => {
        if (stopping) return;
        stopping = true;
        log.info("stopping", { signal: sig });
        await ctrl.stop();
        client.close();
        process.exit(0);
      };
      process.on("SIGTERM", () => void stop("SIGTERM"));
      process.on("SIGINT", () => void stop("SIGINT"));
      await ctrl.start();
    });
}
