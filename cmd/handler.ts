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
  fabric?: string;
  registriesConf?: string;
  accel?: string;
  podRunner: boolean;
  hostDiskRoot?: string;
  nodeStorage?: string;
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
    .option("--fabric <netns>", "the cluster's fabric namespace, routing pods between nodes (tsvirt up sets it)")
    .option(
      "--registries-conf <path>",
      "registry list (containers-registries.conf format) used while the ConfigMap kubevirt/tsvirt-registries does not exist",
    )
    .option("--accel <mode>", "launcher acceleration: auto | kvm | tcg", process.env.TSVIRT_ACCEL ?? "auto")
    .option("--no-pod-runner", "a kubelet runs this node's pods: drive the launchers only, through their sockets")
    .option("--host-disk-root <dir>", "allow hostDisk volumes below this directory (off by default)")
    .option(
      "--node-storage <size>",
      "space this node offers to tsvirt-local volumes below DATA_DIR/volumes, e.g. 20Gi (default: none)",
    )
    .action(async (o: Opts) => {
      const { ClusterConfig, Informer, loadConfig, RestClient, resources } = await import("../client/index.js");
      const { createLogger } = await import("../lib/log.js");
      const h = await import("../handler/index.js");
      const { EventRecorder } = await import("../controller/index.js");
      const { loadRegistriesConf, nodeImagePuller } = await import("../images/index.js");
      const { resolve, join } = await import("node:path");
      const log = createLogger({ component: "virt-handler", node: o.node });
      const localStorageBytes = o.nodeStorage !== undefined ? h.nodeStorageBytes(o.nodeStorage) : 0;
      const dataDir = resolve(o.dataDir);
      // QEMU runs as libvirt-qemu: it must be able to reach the pod directories below the data dir (refused in
      // one line when a directory above the data dir blocks it)
      const { mkdir } = await import("node:fs/promises");
      await mkdir(dataDir, { recursive: true, mode: 0o755 });
      await (await import("../lib/qemu-user.js")).ensureQemuCanReach(dataDir, dataDir);
      const client = new RestClient({
        ...loadConfig(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
        userAgent: "virt-handler",
      });
      // the cluster's KubeVirt settings, live (virt-handler acts on none of them yet; admission warns about them)
      const clusterConfig = new ClusterConfig(client, await import("../api/index.js"), { log });
      clusterConfig.start();
      const sel = h.selectorsFor(o.node);
      // the ConfigMap kubevirt/tsvirt-registries when present (followed live), else --registries-conf
      const fallback = o.registriesConf ? await loadRegistriesConf(o.registriesConf) : undefined;
      const registries = new h.RegistriesSource({ client, log, ...(fallback ? { fallback } : {}) });
      registries.start();
      let hostDiskRoot: string | undefined;
      if (o.hostDiskRoot) {
        const { realpath } = await import("node:fs/promises");
        hostDiskRoot = await realpath(o.hostDiskRoot).catch(() => {
          throw new Error(`--host-disk-root ${o.hostDiskRoot}: no such directory`);
        });
      }
      const handler = await h.runHandler({
        node: o.node,
        dataDir,
        api: client,
        caches: {
          pods: new Informer(client, resources.pods, { ...sel.pods, log }),
          vmis: new Informer(client, resources.vmis, { ...sel.vmis, log }),
          migrationVmis: new Informer(client, resources.vmis, { ...sel.migrationVmis, log }),
          node: new Informer(client, resources.nodes, { ...sel.node, log }),
          pvs: new Informer(client, resources.pvs, { ...sel.pvs, log }),
        },
        localStorageBytes,
        volumeOwner: await (await import("../lib/qemu-user.js")).qemuUser(),
        dial: h.launcherDialer,
        migrationDial: h.migrationDialer,
        probe: h.probeLauncher,
        puller: nodeImagePuller({
          cacheDir: join(dataDir, "images"),
          registries: () => registries.current(),
          log,
        }),
        ...(hostDiskRoot ? { hostDiskRoot } : {}),
        launcherCommand: h.launcherCommand({
          dataDir,
          tsvirtJs: fileURLToPath(new URL("./tsvirt.js", import.meta.url)),
          ...(o.accel ? { accel: o.accel } : {}),
        }),
        workers: {
          registries: () => registries.current(),
          tsvirtJs: fileURLToPath(new URL("./tsvirt.js", import.meta.url)),
        },
        terminate: h.terminatePodProcess,
        mapPhase: h.mapPhase,
        recorder: new EventRecorder(client, "virt-handler", log, undefined, o.node),
        address: o.address,
        port: Number(o.port) || 0,
        ...(o.uplink ? { uplink: o.uplink } : {}),
        ...(o.fabric ? { fabric: o.fabric } : {}),
        podRunner: o.podRunner,
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
        await registries.stop();
        await clusterConfig.stop();
        client.close();
        process.exit(0);
      };
      process.on("SIGTERM", () => void stop("SIGTERM"));
      process.on("SIGINT", () => void stop("SIGINT"));
    });
}
