// The Kubernetes-style pod network of one node, on one machine:
//   host ── (only with --uplink) ── node namespace "tsvirt-<node>": bridge tsvbr0 = first IP of spec.podCIDR
//                                      ├─ fabric0 ══ the cluster's fabric namespace: other nodes' podCIDRs (fabric.ts)
//                                      └─ veth<uid> ══ eth0 (pod IP) in the pod namespace "tsvirt-pod-<uid12>"
//                                                     k6t-eth0 (10.0.2.1/24) + tap0 for QEMU, udhcpd → 10.0.2.2
// Inbound traffic to the pod IP is DNATed to the guest (10.0.2.2); the guest's outbound traffic is SNATed to the
// pod IP, as KubeVirt's masquerade binding does. Every step is idempotent, so re-running setup after a kill -9
// converges, and teardown works on a half-made pod.
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { MIGRATION_PORT_RANGE } from "../../launcher/index.js";
import { type Cidr, formatCidr, formatIpv4, gatewayOf, parseCidr } from "./cidr.js";
import { ensureDhcp, stopDhcp } from "./dhcp.js";
import { EXISTS, inNetns, MISSING, mustRun, type RunCommand, runCommand } from "./exec.js";
import { attachNode, ensureFabric, type NodeCidr, planFabricRoutes, type RouteDiff, syncRoutes } from "./fabric.js";
import { HostLocalIpam } from "./ipam.js";
import {
  MASQ_BRIDGE,
  MASQ_GATEWAY,
  MASQ_GUEST,
  MASQ_PREFIX,
  MASQ_TAP,
  NODE_BRIDGE,
  nodeNetns,
  POD_IFACE,
  podNetns,
  podVeth,
  UPLINK_NODE_IFACE,
  uplinkHostVeth,
  validateFabricNetns,
  validateIfName,
  validateUid,
} from "./names.js";

export interface PodNetworkOptions {
  node: string;
  /** The node's spec.podCIDR, e.g. "10.244.0.0/24". */
  podCIDR: string;
  /** Node data dir; network state lives under DIR/network (no whitespace in the path). */
  dataDir: string;
  /** Opt-in outbound access beyond the node through this host interface. Off unless given. */
  uplink?: string;
  /** A /30 for the host ↔ node-namespace uplink link (default 100.64.<n>.0/30 derived from the node name). */
  uplinkCidr?: string;
  /** The cluster's fabric namespace (see fabric.ts): pod CIDRs of other nodes are routed through it. */
  fabric?: string;
  dns?: readonly string[];
  run?: RunCommand;
  busybox?: string;
}

export interface PodAttachment {
  uid: string;
  netns: string;
  /** argv prefix that runs a program inside the pod's network namespace (the pod runner starts the launcher so). */
  execPrefix: string[];
  ip: string;
  gateway: string;
  prefix: number;
  tap: string;
  guestIp: string;
}

export interface NatRule {
  table: "nat" | "filter";
  chain: string;
  spec: string[];
}

/** The in-pod NAT rules of the masquerade binding (pure). */
export function masqueradeRules(podIp: string): NatRule[] {
  return [
    { table: "nat", chain: "PREROUTING", spec: ["-i", POD_IFACE, "-j", "DNAT", "--to-destination", MASQ_GUEST] },
    {
      table: "nat",
      chain: "POSTROUTING",
      spec: ["-s", `${MASQ_GUEST}/32`, "-o", POD_IFACE, "-j", "SNAT", "--to-source", podIp],
    },
  ];
}

/**
 * A migration target pod's rules (pure): the migration ports are exempt from the masquerade DNAT (KubeVirt's
 * masquerade binding skips its migration ports the same way) and reach the pod itself only from the source pod;
 * anyone else on them is dropped. Inserted first: `first` rules go before the binding's DNAT.
 */
export function migrationRules(sourceIp: string, ports: readonly number[]): (NatRule & { first: boolean })[] {
  // One rule per port (no multiport match: one kernel module less to depend on).
  return ports.flatMap((port): (NatRule & { first: boolean })[] => {
    const match = ["-i", POD_IFACE, "-p", "tcp", "--dport", String(port)];
    return [
      { table: "nat", chain: "PREROUTING", spec: [...match, "-s", `${sourceIp}/32`, "-j", "ACCEPT"], first: true },
      { table: "filter", chain: "INPUT", spec: [...match, "-s", `${sourceIp}/32`, "-j", "ACCEPT"], first: true },
      // --syn: only connection attempts. The pod is a migration source later, and a reply to a connection it makes
      // from one of these ports must not be dropped.
      { table: "filter", chain: "INPUT", spec: [...match, "--syn", "-j", "DROP"], first: false },
    ];
  });
}

export interface PodLinkOptions {
  hostname?: string;
  /**
   * The pod's own IP only, no VM binding: a pod that serves on its IP itself (a clone source) must not have every
   * inbound connection DNAT'ed to a guest that is not there.
   */
  plain?: boolean;
  /**
   * No links at all, only the namespace's loopback: a pod that neither serves on its IP nor reaches anything (the
   * upload server takes its bytes on a unix socket in its pod dir). Its IP stays allocated but is not routed. Saves
   * the veth and its ~6 `ip` runs on the pod's start path.
   */
  isolated?: boolean;
}

export class PodNetwork {
  readonly node: string;
  readonly cidr: Cidr;
  readonly nodeNs: string;
  readonly gateway: string;
  readonly ipam: HostLocalIpam;
  private readonly dir: string;
  private readonly run: RunCommand;
  private readonly busybox: string;
  private readonly opts: PodNetworkOptions;

  constructor(opts: PodNetworkOptions) {
    if (/\s/.test(opts.dataDir)) throw new Error(`data dir "${opts.dataDir}" must not contain whitespace`);
    this.opts = opts;
    this.node = opts.node;
    this.nodeNs = nodeNetns(opts.node);
    this.cidr = parseCidr(opts.podCIDR);
    this.gateway = gatewayOf(this.cidr);
    this.dir = join(opts.dataDir, "network");
    this.ipam = new HostLocalIpam(join(this.dir, "ipam"), this.cidr);
    this.run = opts.run ?? runCommand;
    this.busybox = opts.busybox ?? "busybox";
    if (opts.uplink !== undefined) validateIfName(opts.uplink);
    if (opts.fabric !== undefined) validateFabricNetns(opts.fabric);
  }

  get fabric(): string | undefined {
    return this.opts.fabric;
  }

  private must(argv: string[], tolerate?: RegExp): Promise<void> {
    return mustRun(this.run, argv, tolerate);
  }

  private async ok(argv: string[]): Promise<boolean> {
    return (await this.run(argv)).code === 0;
  }

  private async ensureRule(netns: string, rule: NatRule): Promise<void> {
    const base = ["iptables", "-w", "5", "-t", rule.table];
    if (await this.ok(inNetns(netns, [...base, "-C", rule.chain, ...rule.spec]))) return;
    await this.must(inNetns(netns, [...base, "-A", rule.chain, ...rule.spec]));
  }

  private async ensureRuleFirst(netns: string, rule: NatRule): Promise<void> {
    const base = ["iptables", "-w", "5", "-t", rule.table];
    if (await this.ok(inNetns(netns, [...base, "-C", rule.chain, ...rule.spec]))) return;
    await this.must(inNetns(netns, [...base, "-I", rule.chain, "1", ...rule.spec]));
  }

  /**
   * A migration target pod: its migration ports accept the source pod's IP only (migrationRules). Idempotent; the
   * rules go with the pod's namespace.
   */
  async allowMigration(uid: string, sourceIp: string, ports: readonly number[]): Promise<void> {
    const ns = podNetns(validateUid(uid));
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(sourceIp))
      throw new Error(`source address "${sourceIp}" is not an IPv4 address`);
    if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535))
      throw new Error(`invalid migration ports ${JSON.stringify(ports)}`);
    for (const r of migrationRules(sourceIp, ports)) {
      if (r.first) await this.ensureRuleFirst(ns, r);
      else await this.ensureRule(ns, r);
    }
  }

  /** key, value, key, value… in one run. */
  private async sysctl(netns: string, ...kv: string[]): Promise<void> {
    const sets: string[] = [];
    for (let i = 0; i + 1 < kv.length; i += 2) sets.push(`${kv[i]}=${kv[i + 1]}`);
    await this.must(inNetns(netns, [this.busybox, "sysctl", "-w", ...sets]));
  }

  private podDir(uid: string): string {
    return join(this.dir, "pods", validateUid(uid));
  }

  private nodeSetup: Promise<void> = Promise.resolve();

  /** The node namespace and bridge (and the fabric link and uplink when asked for). Idempotent. */
  ensureNode(opts: { fabric?: boolean } = {}): Promise<void> {
    // One at a time: pod setup and route sync both call this, and two link repairs at once would undo each other.
    const fabric = opts.fabric ?? true;
    const next = this.nodeSetup.then(
      () => this.setupNode(fabric),
      () => this.setupNode(fabric),
    );
    this.nodeSetup = next.catch(() => {});
    return next;
  }

  private async setupNode(withFabric: boolean): Promise<void> {
    const ns = this.nodeNs;
    await this.must(["ip", "netns", "add", ns], EXISTS);
    await this.must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    await this.must(["ip", "-n", ns, "link", "add", NODE_BRIDGE, "type", "bridge"], EXISTS);
    await this.must(["ip", "-n", ns, "addr", "replace", `${this.gateway}/${this.cidr.prefix}`, "dev", NODE_BRIDGE]);
    await this.must(["ip", "-n", ns, "link", "set", NODE_BRIDGE, "up"]);
    if (this.opts.fabric !== undefined && withFabric) {
      const fabricNs = this.opts.fabric;
      await ensureFabric(fabricNs, this.run);
      await attachNode({ fabricNs, node: this.node, nodeNs: ns, cidr: this.cidr }, this.run);
      await this.sysctl(ns, "net.ipv4.ip_forward", "1");
    }
    if (this.opts.uplink !== undefined) await this.ensureUplink(this.opts.uplink);
  }

  /**
   * Level-triggered: routes every other node's podCIDR (from the Node objects) through the fabric, removes routes of
   * nodes that are gone, and re-links the node into the fabric if that link went missing. Needs `fabric`.
   */
  async syncRoutes(nodes: readonly NodeCidr[]): Promise<RouteDiff & { problems: string[] }> {
    if (this.opts.fabric === undefined) throw new Error(`node ${this.node} has no fabric to route through`);
    await this.ensureNode();
    const plan = planFabricRoutes({ name: this.node, podCIDR: formatCidr(this.cidr) }, nodes);
    return { ...(await syncRoutes(this.nodeNs, plan.routes, this.run)), problems: plan.problems };
  }

  private uplinkAddrs(): { host: string; node: string; prefix: number } {
    if (this.opts.uplinkCidr) {
      const c = parseCidr(this.opts.uplinkCidr);
      return { host: formatIpv4(c.network + 1), node: formatIpv4(c.network + 2), prefix: c.prefix };
    }
    const h = Number.parseInt(uplinkHostVeth(this.node).slice(4, 6), 16);
    return { host: `100.64.${h}.1`, node: `100.64.${h}.2`, prefix: 30 };
  }

  /** Host side of the opt-in uplink: a veth into the node namespace, forwarding and NAT out of IFACE. */
  private async ensureUplink(iface: string): Promise<void> {
    const ns = this.nodeNs;
    const hostVeth = uplinkHostVeth(this.node);
    const a = this.uplinkAddrs();
    await this.must(
      ["ip", "link", "add", hostVeth, "type", "veth", "peer", "name", UPLINK_NODE_IFACE, "netns", ns],
      EXISTS,
    );
    await this.must(["ip", "addr", "replace", `${a.host}/${a.prefix}`, "dev", hostVeth]);
    await this.must(["ip", "link", "set", hostVeth, "up"]);
    await this.must(["ip", "-n", ns, "addr", "replace", `${a.node}/${a.prefix}`, "dev", UPLINK_NODE_IFACE]);
    await this.must(["ip", "-n", ns, "link", "set", UPLINK_NODE_IFACE, "up"]);
    await this.must(["ip", "-n", ns, "route", "replace", "default", "via", a.host]);
    await this.sysctl(ns, "net.ipv4.ip_forward", "1");
    await this.ensureRule(ns, {
      table: "nat",
      chain: "POSTROUTING",
      spec: ["-s", formatCidr(this.cidr), "-o", UPLINK_NODE_IFACE, "-j", "MASQUERADE"],
    });
    await this.must(["sysctl", "-w", "net.ipv4.ip_forward=1"]);
    const hostRules: NatRule[] = [
      { table: "nat", chain: "POSTROUTING", spec: ["-s", `${a.node}/32`, "-o", iface, "-j", "MASQUERADE"] },
      { table: "filter", chain: "FORWARD", spec: ["-i", hostVeth, "-o", iface, "-j", "ACCEPT"] },
      {
        table: "filter",
        chain: "FORWARD",
        spec: ["-i", iface, "-o", hostVeth, "-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
      },
    ];
    for (const r of hostRules) {
      const base = ["iptables", "-w", "5", "-t", r.table];
      if (!(await this.ok([...base, "-C", r.chain, ...r.spec]))) await this.must([...base, "-A", r.chain, ...r.spec]);
    }
  }

  /** Removes the node namespace (and the uplink). Pods must be torn down first. Idempotent. */
  async teardownNode(): Promise<void> {
    if (this.opts.uplink !== undefined) {
      const hostVeth = uplinkHostVeth(this.node);
      const a = this.uplinkAddrs();
      await this.must(["ip", "link", "del", hostVeth], MISSING);
      for (const [table, chain, spec] of [
        ["nat", "POSTROUTING", ["-s", `${a.node}/32`, "-o", this.opts.uplink, "-j", "MASQUERADE"]],
        ["filter", "FORWARD", ["-i", hostVeth, "-o", this.opts.uplink, "-j", "ACCEPT"]],
        [
          "filter",
          "FORWARD",
          ["-i", this.opts.uplink, "-o", hostVeth, "-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
        ],
      ] as const) {
        await this.run(["iptables", "-w", "5", "-t", table, "-D", chain, ...spec]);
      }
    }
    await this.must(["ip", "netns", "del", this.nodeNs], MISSING);
  }

  /** Allocates the pod IP and builds the pod namespace with its masquerade binding and DHCP. Idempotent. */
  async setupPod(uid: string, opts: PodLinkOptions = {}): Promise<PodAttachment> {
    const { ip } = await this.setupPodNamespace(uid);
    return this.setupPodLinks(uid, ip, opts);
  }

  /**
   * The first half of setupPod: the pod IP and the empty namespace, all a pod's processes need to start in it. The pod
   * runner starts the launcher here and runs setupPodLinks meanwhile (the launcher needs the links only once QEMU
   * starts, seconds later). Idempotent.
   */
  async setupPodNamespace(uid: string): Promise<{ netns: string; ip: string }> {
    validateUid(uid);
    const ns = podNetns(uid);
    const ip = await this.ipam.allocate(uid);
    await this.must(["ip", "netns", "add", ns], EXISTS);
    return { netns: ns, ip };
  }

  /**
   * The second half of setupPod, in the namespace setupPodNamespace made: links, then (unless `plain`) the VM's
   * masquerade binding and DHCP.
   */
  async setupPodLinks(uid: string, ip: string, opts: PodLinkOptions = {}): Promise<PodAttachment> {
    validateUid(uid);
    const ns = podNetns(uid);
    const veth = podVeth(uid);
    // The fabric link is the route sync's to keep (it runs at start and every 30 s): not on the pod's path.
    await this.ensureNode({ fabric: false });
    await this.must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    const attachment = {
      uid,
      netns: ns,
      execPrefix: inNetns(ns, []),
      ip,
      gateway: this.gateway,
      prefix: this.cidr.prefix,
      tap: MASQ_TAP,
      guestIp: MASQ_GUEST,
    };
    if (opts.isolated) return attachment;
    // The veth is made in one step with its peer already in the pod namespace; if a crash left only the node end
    // (or a stale one), start over.
    if (!(await this.ok(["ip", "-n", ns, "link", "show", POD_IFACE]))) {
      await this.must(["ip", "-n", this.nodeNs, "link", "del", veth], MISSING);
      await this.must([
        "ip",
        "-n",
        this.nodeNs,
        "link",
        "add",
        veth,
        "type",
        "veth",
        "peer",
        "name",
        POD_IFACE,
        "netns",
        ns,
      ]);
    }
    await this.must(["ip", "-n", this.nodeNs, "link", "set", veth, "master", NODE_BRIDGE, "up"]);
    await this.must(["ip", "-n", ns, "addr", "replace", `${ip}/${this.cidr.prefix}`, "dev", POD_IFACE]);
    await this.must(["ip", "-n", ns, "link", "set", POD_IFACE, "up"]);
    await this.must(["ip", "-n", ns, "route", "replace", "default", "via", this.gateway, "dev", POD_IFACE]);
    if (opts.plain) return attachment;
    // Masquerade binding.
    await this.must(["ip", "-n", ns, "link", "add", MASQ_BRIDGE, "type", "bridge"], EXISTS);
    await this.must(["ip", "-n", ns, "addr", "replace", `${MASQ_GATEWAY}/${MASQ_PREFIX}`, "dev", MASQ_BRIDGE]);
    await this.must(["ip", "-n", ns, "link", "set", MASQ_BRIDGE, "up"]);
    await this.must(["ip", "-n", ns, "tuntap", "add", "dev", MASQ_TAP, "mode", "tap"], EXISTS);
    await this.must(["ip", "-n", ns, "link", "set", MASQ_TAP, "master", MASQ_BRIDGE, "up"]);
    // The migration ports are never a local port the kernel picks for an outbound connection: as a target the pod
    // listens on them, and as a source later it still has the target's rules for them (one sysctl run for both).
    await this.sysctl(ns, "net.ipv4.ip_forward", "1", "net.ipv4.ip_local_reserved_ports", MIGRATION_PORT_RANGE);
    for (const rule of masqueradeRules(ip)) await this.ensureRule(ns, rule);
    const dir = this.podDir(uid);
    await mkdir(dir, { recursive: true });
    const dhcp: Parameters<typeof ensureDhcp>[1] = { dir };
    if (opts.hostname !== undefined) dhcp.hostname = opts.hostname;
    if (this.opts.dns !== undefined) dhcp.dns = this.opts.dns;
    await ensureDhcp(ns, dhcp, { busybox: this.busybox });
    return attachment;
  }

  /** Stops the DHCP server, deletes the pod namespace and its veth, and releases the IP. Idempotent. */
  async teardownPod(uid: string): Promise<void> {
    validateUid(uid);
    const ns = podNetns(uid);
    const dir = this.podDir(uid);
    await stopDhcp(dir, ns);
    await this.must(["ip", "netns", "del", ns], MISSING);
    await this.must(["ip", "-n", this.nodeNs, "link", "del", podVeth(uid)], MISSING);
    await rm(dir, { recursive: true, force: true });
    await this.ipam.release(uid);
  }

  /** Pod uids with network state on disk (an allocated IP or a pod dir): for garbage collection after a crash. */
  async knownPods(): Promise<string[]> {
    const uids = new Set((await this.ipam.list()).values());
    try {
      for (const d of await readdir(join(this.dir, "pods"))) uids.add(d);
    } catch {
      // none yet
    }
    return [...uids].filter((u) => {
      try {
        validateUid(u);
        return true;
      } catch {
        return false;
      }
    });
  }
}
