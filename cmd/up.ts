// `tsvirt up --listen HOST:PORT --data-dir DIR [--nodes N] [--uplink IFACE]`: the embedded all-in-one. Supervises
// `tsvirt api`, `tsvirt controller` and one `tsvirt handler` per node as separate processes (pids in DIR/run/, logs
// in DIR/logs/, DIR/kubeconfig for kubectl and virtctl, the administrator), restarting any that exits. The controller
// and the node agents talk to the API as their own service accounts (DIR/identities/<sa>.kubeconfig, written by the
// API server at its start). Launchers belong to their node's
// handler and survive restarts of every one of these. Ctrl+C stops the VMs gracefully, then everything.
// The nodes' pods reach each other through one fabric namespace per data dir (handler/network/fabric.ts), made here
// before the node agents start and removed on exit with the node namespaces.
import { fileURLToPath } from "node:url";
import type { Command } from "commander";

interface Opts {
  listen: string;
  dataDir: string;
  nodes: string;
  uplink?: string;
  accel?: string;
  nodePrefix: string;
  hostDiskRoot?: string;
  nodeStorage: string;
}

/**
 * tsvirt up's default per-node local storage: enough for a few demo disks (volumes are sparse files, so only
 * written bytes use the disk), small enough that `--nodes 2` does not promise much more than a laptop has.
 */
export const DEFAULT_NODE_STORAGE = "20Gi";

export function nodeNames(n: number, prefix = "node"): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(2, "0")}`);
}

export function registerUp(program: Command): void {
  program
    .command("up")
    .description("run tsvirt on this machine: API server, controller and node agents, supervised")
    .option("--listen <host:port>", "API server address", "127.0.0.1:6443")
    .option("--data-dir <dir>", "state directory (run/, logs/, kubeconfig, nodes/)", "/var/lib/tsvirt")
    .option("--nodes <n>", "number of node agents (each with its own network namespace)", "1")
    .option("--uplink <iface>", "give pods outbound access through this host interface (off by default)")
    .option("--accel <mode>", "launcher acceleration: auto | kvm | tcg")
    .option("--node-prefix <prefix>", "node names are PREFIX01, PREFIX02, ...", "node")
    .option("--host-disk-root <dir>", "allow hostDisk volumes below this directory on every node (off by default)")
    .option(
      "--node-storage <size>",
      "space each node offers to tsvirt-local volumes (per node: the nodes share this machine's file system)",
      DEFAULT_NODE_STORAGE,
    )
    .action(async (o: Opts) => {
      const { resolve, join } = await import("node:path");
      const { readdir } = await import("node:fs/promises");
      const { existsSync } = await import("node:fs");
      const { Supervisor, alive } = await import("../lib/supervisor.js");
      const { createLogger } = await import("../lib/log.js");
      const { killNetns, network, nodeStorageBytes, readPodRecord, terminatePodProcess } = await import(
        "../handler/index.js"
      );
      const { componentKubeconfigPath } = await import("../apiserver/index.js");
      const { checkListen } = await import("../apiserver/index.js");
      const { ensureQemuCanReach } = await import("../lib/qemu-user.js");
      const { mkdir } = await import("node:fs/promises");
      const log = createLogger({ component: "tsvirt-up" });
      // refused settings end here, in one line, before anything starts
      const n = Number(o.nodes);
      if (!/^\d+$/.test(o.nodes) || n < 1 || n > 16)
        throw new Error(`--nodes must be between 1 and 16, not ${o.nodes}`);
      if (!/^[a-z][a-z0-9-]{0,20}$/.test(o.nodePrefix)) throw new Error("--node-prefix must be a short DNS label");
      if (o.accel !== undefined && !["auto", "kvm", "tcg"].includes(o.accel))
        throw new Error(`--accel must be auto, kvm or tcg, not ${o.accel}`);
      nodeStorageBytes(o.nodeStorage); // a size at all
      checkListen(o.listen, true); // HOST:PORT at all
      try {
        checkListen(o.listen, false);
      } catch {
        throw new Error(
          `--listen ${o.listen}: tsvirt up serves the API on loopback only (tsvirt api can expose it with TLS)`,
        );
      }
      const dir = resolve(o.dataDir);
      // QEMU's user reaches pod disks below DIR/nodes: make tsvirt's own directories traversable for it, refuse
      // (one line) when a directory above DIR blocks it
      await mkdir(join(dir, "nodes"), { recursive: true });
      await ensureQemuCanReach(join(dir, "nodes"), dir);
      const tsvirtJs = fileURLToPath(new URL("./tsvirt.js", import.meta.url));
      const node = process.execPath;
      const kubeconfig = join(dir, "kubeconfig");
      const sup = new Supervisor({ runDir: join(dir, "run"), logDir: join(dir, "logs"), log });
      const env = o.accel ? { ...process.env, TSVIRT_ACCEL: o.accel } : process.env;

      await sup.start({ name: "api", argv: [node, tsvirtJs, "api", "--listen", o.listen, "--data-dir", dir] });
      // Wait until the API answers (bounded), so the others start against a serving API.
      const deadline = Date.now() + 120_000;
      for (;;) {
        const ok = existsSync(kubeconfig)
          ? await fetch(`http://${o.listen}/readyz`).then(
              (r) => r.ok,
              () => false,
            )
          : false;
        if (ok) break;
        if (Date.now() > deadline)
          throw new Error(`the API server did not become ready; see ${join(dir, "logs", "api.log")}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const controllerKc = componentKubeconfigPath(dir, "controller");
      await sup.start({ name: "controller", argv: [node, tsvirtJs, "controller", "--kubeconfig", controllerKc] });
      const names = nodeNames(n, o.nodePrefix);
      const fabric = network.fabricNetns(dir);
      await network.ensureFabric(fabric, network.runCommand);
      for (const name of names) {
        const argv = [
          node,
          tsvirtJs,
          "handler",
          "--node",
          name,
          "--kubeconfig",
          componentKubeconfigPath(dir, "handler"),
          "--fabric",
          fabric,
        ];
        argv.push("--data-dir", join(dir, "nodes", name));
        if (o.uplink) argv.push("--uplink", o.uplink);
        if (o.hostDiskRoot) argv.push("--host-disk-root", resolve(o.hostDiskRoot));
        argv.push("--node-storage", o.nodeStorage);
        await sup.start({ name: `handler-${name}`, argv, env });
      }
      process.stdout.write(
        `tsvirt is up: ${n} node(s), API at http://${o.listen}\n  export KUBECONFIG=${kubeconfig}\n  logs: ${join(dir, "logs")}\n` +
          "  single-user: a request without a token acts as the administrator (loopback only)\n",
      );

      let stopping = false;
      const stop = async (sig: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        log.info("stopping: VMs first, then the control plane", { signal: sig });
        await sup.stop("controller");
        // Every pod of every node: graceful stop (a launcher shuts its guest down, then exits; a worker stops itself).
        const pods: { pid: number; podDir: string }[] = [];
        const netnses: string[] = [];
        for (const name of names) {
          const podsDir = join(dir, "nodes", name, "pods");
          for (const d of await readdir(podsDir).catch(() => [] as string[])) {
            const rec = await readPodRecord(join(podsDir, d));
            if (rec) netnses.push(rec.netns);
            if (rec && alive(rec.pid)) pods.push({ pid: rec.pid, podDir: join(podsDir, d) });
          }
        }
        for (const p of pods) terminatePodProcess(p.pid);
        const until = Date.now() + 120_000;
        while (pods.some((p) => alive(p.pid)) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
        log.info("VMs stopped", { count: pods.length });
        await sup.stopAll(names.map((x) => `handler-${x}`).concat("api"));
        // Leave no pod processes (DHCP servers) or namespaces behind; the next start re-creates what it needs.
        for (const ns of [...netnses, ...names.map((x) => network.nodeNetns(x))].filter((x) =>
          x.startsWith("tsvirt-"),
        )) {
          await killNetns(ns);
          await network.runCommand(["ip", "netns", "del", ns]);
        }
        await network.deleteFabric(fabric, network.runCommand).catch((err: unknown) => {
          log.error("cannot remove the fabric namespace", { netns: fabric, err });
        });
        process.exit(0);
      };
      process.on("SIGINT", () => void stop("SIGINT"));
      process.on("SIGTERM", () => void stop("SIGTERM"));
    });
}
