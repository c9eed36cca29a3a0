// Names of namespaces and links of the pod network, all validated: nothing user-supplied reaches `ip` unchecked.

/** Node names: DNS-1123 labels, short enough for a network namespace name. */
const NODE_NAME = /^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$/;
/** Kubernetes uids as the API server generates them (RFC 4122 text form), or plain lowercase hex. */
const UID = /^[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}$/;
/** Interface names as we pass them to `ip`: at most 15 bytes of [a-z0-9-]. */
const IFNAME = /^[a-z0-9][a-z0-9-]{0,14}$/;

export function validateNodeName(node: string): string {
  if (!NODE_NAME.test(node))
    throw new Error(`invalid node name "${node}": must be a DNS-1123 label of at most 50 characters`);
  return node;
}

export function validateUid(uid: string): string {
  if (!UID.test(uid)) throw new Error(`invalid pod uid "${uid}"`);
  return uid;
}

export function validateIfName(name: string): string {
  if (!IFNAME.test(name)) throw new Error(`invalid interface name "${name}"`);
  return name;
}

/** The per-node network namespace holding the node bridge and the host ends of the pods' veths. */
export function nodeNetns(node: string): string {
  return `tsvirt-${validateNodeName(node)}`;
}

function uidHex(uid: string): string {
  return validateUid(uid).replaceAll("-", "");
}

/** A launcher pod's network namespace, named by the pod uid's first 12 hex digits. */
export function podNetns(uid: string): string {
  return `tsvirt-pod-${uidHex(uid).slice(0, 12)}`;
}

/** The node-side end of a pod's veth (lives in the node namespace). */
export function podVeth(uid: string): string {
  return `veth${uidHex(uid).slice(0, 11)}`;
}

export const NODE_BRIDGE = "tsvbr0";
/** Inside the pod: its end of the veth carries the pod IP. */
export const POD_IFACE = "eth0";
/** Masquerade binding, as KubeVirt names it: the in-pod bridge and the tap QEMU opens. */
export const MASQ_BRIDGE = "k6t-eth0";
export const MASQ_TAP = "tap0";
export const MASQ_GATEWAY = "10.0.2.1";
export const MASQ_GUEST = "10.0.2.2";
export const MASQ_PREFIX = 24;
/** 8 hex digits of FNV-1a: short, stable names within the 15 bytes of an interface name. */
function hash8(s: string): string {
  let h = 2166136261;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** The uplink veth between the host and a node namespace (only with --uplink). */
export function uplinkHostVeth(node: string): string {
  return `tsvu${hash8(validateNodeName(node))}`;
}
export const UPLINK_NODE_IFACE = "uplink0";

/**
 * The cluster's fabric namespace: one per `tsvirt up` data dir, so two clusters on one machine never share one. The
 * dot keeps it apart from every node namespace (node names are DNS labels, without dots).
 */
export function fabricNetns(clusterKey: string): string {
  return `tsvirt-fabric.${hash8(clusterKey)}`;
}

const FABRIC_NETNS = /^tsvirt-fabric\.[a-z0-9-]{1,40}$/;

export function validateFabricNetns(netns: string): string {
  if (!FABRIC_NETNS.test(netns)) throw new Error(`invalid fabric namespace "${netns}": must match ${FABRIC_NETNS}`);
  return netns;
}

/** The fabric's bridge (in the fabric namespace) and each node's link into it (in the node namespace). */
export const FABRIC_BRIDGE = "tsvfab0";
export const FABRIC_NODE_IFACE = "fabric0";

/** The fabric-side end of a node's link (a port of the fabric bridge). */
export function fabricPeer(node: string): string {
  return `tsvf${hash8(validateNodeName(node))}`;
}
