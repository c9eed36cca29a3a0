// The cluster fabric: how pods of one node reach pods of another, without the host's interfaces.
//   fabric namespace "tsvirt-fabric.<hash of the data dir>": bridge tsvfab0, one port tsvf<hash(node)> per node
//   node namespace "tsvirt-<node>": fabric0 (veth into that bridge) carrying the node's gateway address as a /32,
//     and for every other node a route  <its podCIDR> via <its gateway> dev fabric0 onlink proto 245.
// A node's address on the fabric is its pod gateway (first IP of its podCIDR): unique because podCIDRs are, known
// from the Node object alone, so no second allocator or transit subnet exists that could collide with the host's.
// Routes carry our protocol number, so reconciling lists exactly ours and leaves every other route alone.
import { type Cidr, formatCidr, gatewayOf, parseCidr } from "./cidr.js";
import { EXISTS, MISSING, mustRun, type RunCommand } from "./exec.js";
import { FABRIC_BRIDGE, FABRIC_NODE_IFACE, fabricPeer, validateFabricNetns } from "./names.js";

/** The routing protocol number marking fabric routes (unassigned in iproute2's rt_protos). */
export const FABRIC_PROTO = "245";

export interface NodeCidr {
  name: string;
  podCIDR?: string | undefined;
}

export interface FabricRoute {
  /** Another node's podCIDR. */
  dst: string;
  /** That node's gateway, reached on the fabric link. */
  via: string;
}

export interface RoutePlan {
  routes: FabricRoute[];
  /** Nodes left out, with why (a bad or overlapping podCIDR). */
  problems: string[];
}

function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
  return (a.network & m) >>> 0 === (b.network & m) >>> 0;
}

/** The routes the node `self` needs: one per other node with a valid podCIDR that overlaps nothing (pure). */
export function planFabricRoutes(self: { name: string; podCIDR: string }, nodes: readonly NodeCidr[]): RoutePlan {
  const own = parseCidr(self.podCIDR);
  const taken: { node: string; cidr: Cidr }[] = [{ node: self.name, cidr: own }];
  const routes: FabricRoute[] = [];
  const problems: string[] = [];
  // Sorted by name: with a conflict, every node keeps the same one, whatever order the cache lists them in.
  for (const n of [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (n.name === self.name || !n.podCIDR) continue;
    let cidr: Cidr;
    try {
      cidr = parseCidr(n.podCIDR);
    } catch (e) {
      problems.push(`node ${n.name}: ${(e as Error).message}`);
      continue;
    }
    const clash = taken.find((t) => overlaps(t.cidr, cidr));
    if (clash) {
      problems.push(`node ${n.name}: podCIDR ${n.podCIDR} overlaps node ${clash.node}'s ${formatCidr(clash.cidr)}`);
      continue;
    }
    taken.push({ node: n.name, cidr });
    routes.push({ dst: formatCidr(cidr), via: gatewayOf(cidr) });
  }
  return { routes, problems };
}

export interface RouteDiff {
  /** Routes to install (`ip route replace`). */
  add: FabricRoute[];
  /** Destinations of our routes that no node needs any more. */
  del: string[];
}

/** What turns the installed fabric routes into the wanted ones (pure). */
export function diffRoutes(want: readonly FabricRoute[], have: readonly FabricRoute[]): RouteDiff {
  const wanted = new Set(want.map((r) => r.dst));
  const present = new Set(have.map((r) => `${r.dst} ${r.via}`));
  return {
    add: want.filter((r) => !present.has(`${r.dst} ${r.via}`)),
    del: [...new Set(have.filter((r) => !wanted.has(r.dst)).map((r) => r.dst))],
  };
}

/** `ip -j route show proto 245` output → routes (pure). A /32 is printed without its prefix. */
export function parseRoutes(json: string): FabricRoute[] {
  const text = json.trim();
  if (text === "") return [];
  const rows = JSON.parse(text) as { dst?: unknown; gateway?: unknown }[];
  const out: FabricRoute[] = [];
  for (const r of rows) {
    if (typeof r.dst !== "string") continue;
    const dst = r.dst.includes("/") || r.dst === "default" ? r.dst : `${r.dst}/32`;
    out.push({ dst, via: typeof r.gateway === "string" ? r.gateway : "" });
  }
  return out;
}

/** The fabric namespace and its bridge. Idempotent; `tsvirt up` makes it first, every node agent re-checks it. */
export async function ensureFabric(fabricNs: string, run: RunCommand): Promise<void> {
  validateFabricNetns(fabricNs);
  await mustRun(run, ["ip", "netns", "add", fabricNs], EXISTS);
  await mustRun(run, ["ip", "-n", fabricNs, "link", "set", "lo", "up"]);
  await mustRun(run, ["ip", "-n", fabricNs, "link", "add", FABRIC_BRIDGE, "type", "bridge"], EXISTS);
  await mustRun(run, ["ip", "-n", fabricNs, "link", "set", FABRIC_BRIDGE, "up"]);
}

/** Removes the fabric namespace (its ports go with it; the nodes' fabric0 ends vanish too). Idempotent. */
export async function deleteFabric(fabricNs: string, run: RunCommand): Promise<void> {
  await mustRun(run, ["ip", "netns", "del", validateFabricNetns(fabricNs)], MISSING);
}

export interface FabricLink {
  fabricNs: string;
  node: string;
  nodeNs: string;
  /** The node's podCIDR (its gateway becomes its fabric address). */
  cidr: Cidr;
}

/** Links a node namespace into the fabric: fabric0 there, its peer a port of the fabric bridge. Idempotent. */
export async function attachNode(l: FabricLink, run: RunCommand): Promise<void> {
  const peer = fabricPeer(l.node);
  const port = ["ip", "-n", l.fabricNs, "link", "set", peer, "master", FABRIC_BRIDGE, "up"];
  const linked = (await run(["ip", "-n", l.nodeNs, "link", "show", FABRIC_NODE_IFACE])).code === 0;
  // A veth pair lives and dies as one; if our end exists but its peer is not in this fabric (a fabric namespace
  // re-created under the same name), start over.
  if (!linked || (await run(port)).code !== 0) {
    await mustRun(run, ["ip", "-n", l.nodeNs, "link", "del", FABRIC_NODE_IFACE], MISSING);
    await mustRun(run, ["ip", "-n", l.fabricNs, "link", "del", peer], MISSING);
    await mustRun(run, [
      "ip",
      "-n",
      l.nodeNs,
      "link",
      "add",
      FABRIC_NODE_IFACE,
      "type",
      "veth",
      "peer",
      "name",
      peer,
      "netns",
      l.fabricNs,
    ]);
    await mustRun(run, port);
  }
  const addr = `${gatewayOf(l.cidr)}/32`;
  await mustRun(run, ["ip", "-n", l.nodeNs, "addr", "replace", addr, "dev", FABRIC_NODE_IFACE]);
  await mustRun(run, ["ip", "-n", l.nodeNs, "link", "set", FABRIC_NODE_IFACE, "up"]);
}

/** Installs the wanted fabric routes in the node namespace and removes ours that are no longer wanted. */
export async function syncRoutes(nodeNs: string, want: readonly FabricRoute[], run: RunCommand): Promise<RouteDiff> {
  const list = ["ip", "-j", "-n", nodeNs, "route", "show", "proto", FABRIC_PROTO];
  const r = await run(list);
  if (r.code !== 0) await mustRun(run, list);
  const diff = diffRoutes(want, parseRoutes(r.stdout));
  for (const dst of diff.del) {
    await mustRun(run, ["ip", "-n", nodeNs, "route", "del", dst, "proto", FABRIC_PROTO], /No such process/);
  }
  for (const a of diff.add) {
    await mustRun(run, [
      "ip",
      "-n",
      nodeNs,
      "route",
      "replace",
      a.dst,
      "via",
      a.via,
      "dev",
      FABRIC_NODE_IFACE,
      "onlink",
      "proto",
      FABRIC_PROTO,
    ]);
  }
  return diff;
}
