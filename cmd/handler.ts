// `tsvirt handler --node NAME --kubeconfig PATH --data-dir DIR`: virt-handler, the node agent (and, in embedded
// mode, the pod runner). Launchers it starts outlive it; a restarted handler re-attaches to them.
import { fileURLToPath } from "node:url";
import type { Command } from "commander";

interface Opts {
  node: string;
  kubeconfig?: string;
  dataDir: string;
  address: string;
  port: string;
  uplink?: string;
  registriesConf?: string;
  accel?: string;
}

export function registerHandler(program: Command): void {
  program
    .command("handler")
    .description("run virt-handler for one node: pod runner, pod network, VMI sync, pods/log and console endpoint")
    .requiredOption("--node <name>", "this node's name")
    .option("--kubeconfig <path>", "kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config)")
    .option("--data-dir <dir>", "node state: pods, pod network, image cache", "/var/lib/tsvirt/node")
    .option("--address <ip>", "address the API server reaches this agent on (pods' hostIP)", "127.0.0.1")
    .option("--port <port>", "port of the agent's endpoint (0: any free port; published in the Node)", "0")
    .option(
      "--uplink <iface>",
      "give pods outbound access beyond the node through this host interface (off by default)",
    )
    .option("--registries-conf <path>", "registry list (containers-registries.conf format)")
    .option("--accel <mode>", "launcher acceleration: auto | kvm | tcg", process.env.TSVIRT_ACCEL ?? "auto")
    .action(async (o: Opts) => {
      const { ClusterConfig, Informer, loadConfig, RestClient, resources } = await import("../client/index.js");
      const { createLogger } = await import("../lib/log.js");
      const h = await import("../handler/index.js");
      const { loadRegistriesConf } = await import("../images/index.js");
      const { resolve, join } = await import("node:path");
      const log = createLogger({ component: "virt-handler", node: o.node });
      const dataDir = resolve(o.dataDir);
      // QEMU runs as libvirt-qemu: it must be able to reach the pod directories below the data dir.
      const { mkdir } = await import("node:fs/promises");
      await mkdir(dataDir, { recursive: true, mode: 0o755 });
      const client = new RestClient({
        ...loadConfig(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
        userAgent: "virt-handler",
      });
      // the cluster's KubeVirt settings, live (virt-handler acts on none of them yet; admission warns about them)
      const clusterConfig = new ClusterConfig(client, { log });
      clusterConfig.start();
      const sel = h.selectorsFor(o.node);
      const registries = o.registriesConf ? await loadRegistriesConf(o.registriesConf) : undefined;
      const handler = await h.runHandler({
        node: o.node,
        dataDir,
        api: client,
        caches: {
          pods: new Informer(client, resources.pods, { ...sel.pods, log }),
          vmis: new Informer(client, resources.vmis, { ...sel.vmis, log }),
          node: new Informer(client, resources.nodes, { ...sel.node, log }),
        },
        dial: h.launcherDialer,
        puller: h.imagePuller({ cacheDir: join(dataDir, "images"), ...(registries ? { registries } : {}) }),
        launcherCommand: h.launcherCommand({
          dataDir,
          tsvirtJs: fileURLToPath(new URL("./tsvirt.js", import.meta.url)),
          ...(o.accel ? { accel: o.accel } : {}),
        }),
        terminate: h.terminateLauncherPod,
        terminationLog: h.terminationLog,
        mapPhase: h.mapPhase,
        address: o.address,
        port: Number(o.port) || 0,
        ...(o.uplink ? { uplink: o.uplink } : {}),
        version: "v0.1.0",
        log,
      });
      let stopping = false;
      const stop = async (sig: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        // Launchers keep running: VMs survive a handler restart.
        log.info("stopping (launchers keep running)", { signal: sig });
        await handler.close();
        await clusterConfig.stop();
        client.close();
        process.exit(0);
      };
      process.on("SIGTERM", () => void stop("SIGTERM"));
      process.on("SIGINT", () => void stop("SIGINT"));
    });
}
