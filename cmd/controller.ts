// `tsvirt controller --kubeconfig PATH`: virt-controller against the API named by the kubeconfig.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";

interface ControllerFlags {
  kubeconfig?: string;
  threads: string;
  scheduler: boolean;
  leaderElect?: boolean;
  dataDir?: string;
  identityFile?: string;
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
  nodeMonitorGracePeriod: string;
  podEvictionTimeout: string;
  nodeMonitorPeriod: string;
}

export function registerController(program: Command): void {
  program
    .command("controller")
    .description("run virt-controller: VM, VMI, scheduler (embedded mode) and node pod-CIDR reconcilers")
    .option("--kubeconfig <path>", "kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    .option("--threads <n>", "workers per queue", "3")
    .option("--no-scheduler", "do not run the built-in scheduler (a cluster's kube-scheduler binds pods)")
    .option("--leader-elect", "campaign for the kubevirt/virt-controller Lease; only the leader reconciles")
    .option("--data-dir <dir>", "keeps this controller's leader-election identity (controller-identity)")
    .option("--identity-file <path>", "file holding the leader-election identity (created with a random id)")
    .option("--lease-duration <seconds>", "leader election lease duration", "15")
    .option("--renew-deadline <seconds>", "leader election renew deadline", "10")
    .option("--retry-period <seconds>", "leader election retry period", "2")
    .option("--node-monitor-grace-period <seconds>", "node silence before Ready=Unknown", "40")
    .option("--pod-eviction-timeout <seconds>", "Ready=Unknown time before pods are deleted, VMIs failed", "300")
    .option("--node-monitor-period <seconds>", "how often node heartbeats are checked", "5")
    .action(async (opts: ControllerFlags) => {
      const { loadConfig, RestClient } = await import("../client/index.js");
      const { LEADER_DEFAULTS, LeaderElector, loadIdentity, NodeLifecycleController, VirtController } = await import(
        "../controller/index.js"
      );
      const { createLogger } = await import("../lib/log.js");
      const log = createLogger({ component: "virt-controller" });
      const client = new RestClient({
        ...loadConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
        userAgent: "virt-controller",
      });
      const ctrl = new VirtController({
        client,
        log,
        threads: Number(opts.threads) || 3,
        scheduler: opts.scheduler,
        apiServerURL: client.config.server,
      });
      const sec = (v: string, d: number) => (Number.isFinite(Number(v)) && Number(v) > 0 ? Number(v) * 1000 : d);
      const nodes = new NodeLifecycleController({
        client,
        log: log.child({ controller: "nodelifecycle" }),
        recorder: ctrl.recorder,
        periodMs: sec(opts.nodeMonitorPeriod, 5_000),
        cache: { nodes: ctrl.nodes, pods: ctrl.pods, vmis: ctrl.vmis },
        config: {
          monitorGracePeriodMs: sec(opts.nodeMonitorGracePeriod, 40_000),
          podEvictionTimeoutMs: sec(opts.podEvictionTimeout, 300_000),
        },
      });
      const lead = async () => {
        await ctrl.start();
        nodes.start();
      };
      let elector: InstanceType<typeof LeaderElector> | undefined;
      let stopping = false;
      const stop = async (sig: string) => {
        if (stopping) return;
        stopping = true;
        log.info("stopping", { signal: sig });
        await elector?.stop();
        await nodes.stop();
        await ctrl.stop();
        client.close();
        process.exit(0);
      };
      process.on("SIGTERM", () => void stop("SIGTERM"));
      process.on("SIGINT", () => void stop("SIGINT"));
      if (!opts.leaderElect) {
        await lead();
        return;
      }
      const idFile = opts.identityFile ?? (opts.dataDir ? join(opts.dataDir, "controller-identity") : undefined);
      const identity = idFile ? loadIdentity(idFile) : `${hostname()}_${randomBytes(8).toString("hex")}`;
      elector = new LeaderElector(
        client,
        {
          ...LEADER_DEFAULTS,
          identity,
          leaseDurationMs: sec(opts.leaseDuration, LEADER_DEFAULTS.leaseDurationMs),
          renewDeadlineMs: sec(opts.renewDeadline, LEADER_DEFAULTS.renewDeadlineMs),
          retryPeriodMs: sec(opts.retryPeriod, LEADER_DEFAULTS.retryPeriodMs),
        },
        {
          onStartedLeading: lead,
          // As client-go: a controller that lost its lease exits; the supervisor restarts it as a follower with
          // clean in-memory state (expectations, assumed pods), so it never acts on a stale view beside a new leader.
          onStoppedLeading: () => {
            log.error("leader election lost; exiting");
            process.exit(1);
          },
          onNewLeader: (id) => log.info("leader", { identity: id, self: id === identity }),
        },
        log,
      );
      log.info("leader election: campaigning", {
        identity,
        lease: `${LEADER_DEFAULTS.namespace}/${LEADER_DEFAULTS.name}`,
      });
      elector.start();
    });
}
