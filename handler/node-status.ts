// The Node object this agent registers and keeps fresh (pure), with KubeVirt's schedulable label and heartbeat.

import { HEARTBEAT_ANNOTATION, parseQuantity, SCHEDULABLE_LABEL } from "../api/index.js";
import { NODE_STORAGE_RESOURCE } from "../storage/index.js";
import type { Lease, Node } from "./ports.js";

type NodeCondition = NonNullable<NonNullable<Node["status"]>["conditions"]>[number];

export { HEARTBEAT_ANNOTATION, SCHEDULABLE_LABEL };
export const NODE_LEASE_NAMESPACE = "kube-node-lease";
export const LEASE_DURATION_SECONDS = 40;

export interface MachineInfo {
  cpus: number;
  memoryBytes: number;
  /** Node's address for the API server's proxy (pods/log, console). */
  address: string;
  hostname: string;
  /** The agent's HTTP port (status.daemonEndpoints.kubeletEndpoint.Port). */
  port: number;
  kernelVersion: string;
  osImage: string;
  arch: string;
  version: string;
  /** Bytes this node offers to tsvirt-local volumes (tsvirt handler --node-storage; 0: none). */
  localStorageBytes?: number;
}

/** What the launcher (libvirtd + QEMU overhead) and the agent keep back from the machine. */
export interface Reservation {
  cpuMillis: number;
  memoryBytes: number;
}

export const DEFAULT_RESERVATION: Reservation = { cpuMillis: 0, memoryBytes: 256 * 1024 * 1024 };

/** --node-storage SIZE (a quantity such as 20Gi; "0": none) in bytes; throws one line naming the flag. */
export function nodeStorageBytes(size: string): number {
  const v = parseQuantity(size);
  if (v === undefined || v < 0 || !Number.isSafeInteger(Math.floor(v))) {
    throw new Error(`--node-storage must be a size such as 20Gi, not ${JSON.stringify(size)}`);
  }
  return Math.floor(v);
}

function kib(bytes: number): string {
  return `${Math.floor(bytes / 1024)}Ki`;
}

export function nodeCapacity(m: MachineInfo, r: Reservation = DEFAULT_RESERVATION) {
  const capacity: Record<string, string> = {
    cpu: String(m.cpus),
    memory: kib(m.memoryBytes),
    pods: "110",
    "devices.kubevirt.io/tun": "1k",
    "devices.kubevirt.io/vhost-net": "1k",
    [NODE_STORAGE_RESOURCE]: String(Math.max(0, Math.floor(m.localStorageBytes ?? 0))),
  };
  const allocCpu = Math.max(0, m.cpus * 1000 - r.cpuMillis);
  const allocatable: Record<string, string> = {
    ...capacity,
    cpu: allocCpu % 1000 === 0 ? String(allocCpu / 1000) : `${allocCpu}m`,
    memory: kib(Math.max(0, m.memoryBytes - r.memoryBytes)),
  };
  return { capacity, allocatable };
}

export function nodeLabels(name: string, m: MachineInfo): Record<string, string> {
  const arch = m.arch === "x64" ? "amd64" : m.arch === "arm64" ? "arm64" : m.arch;
  return {
    "kubernetes.io/hostname": name,
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": arch,
    "beta.kubernetes.io/os": "linux",
    "beta.kubernetes.io/arch": arch,
    [SCHEDULABLE_LABEL]: "true",
  };
}

/** A fresh Node for registration (spec.podCIDR is the controller's to set). */
export function newNode(name: string, m: MachineInfo, now: string): Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: nodeLabels(name, m), annotations: { [HEARTBEAT_ANNOTATION]: now } },
    spec: {},
  };
}

function readyCondition(old: readonly NodeCondition[] | undefined, now: string): NodeCondition[] {
  const prev = old?.find((c) => c.type === "Ready");
  const transition = prev?.status === "True" && prev.lastTransitionTime ? prev.lastTransitionTime : now;
  const others = (old ?? []).filter((c) => c.type !== "Ready");
  return [
    ...others,
    {
      type: "Ready",
      status: "True",
      reason: "KubeletReady",
      message: "tsvirt handler is posting ready status",
      lastHeartbeatTime: now,
      lastTransitionTime: transition,
    },
  ];
}

/** The node's status as of `now` (Ready with a fresh heartbeat). */
export function nodeStatus(node: Node, m: MachineInfo, now: string, r?: Reservation): NonNullable<Node["status"]> {
  const { capacity, allocatable } = nodeCapacity(m, r);
  return {
    ...(node.status ?? {}),
    capacity,
    allocatable,
    conditions: readyCondition(node.status?.conditions, now),
    addresses: [
      { type: "InternalIP", address: m.address },
      { type: "Hostname", address: m.hostname },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: m.port } },
    nodeInfo: {
      architecture: nodeLabels("x", m)["kubernetes.io/arch"] ?? m.arch,
      operatingSystem: "linux",
      kernelVersion: m.kernelVersion,
      osImage: m.osImage,
      kubeletVersion: m.version,
      kubeProxyVersion: "",
      containerRuntimeVersion: `tsvirt://${m.version}`,
      machineID: "",
      systemUUID: "",
      bootID: "",
    },
  };
}

/** Labels and annotation the agent keeps on its Node in both modes (merged over whatever else is there). */
export function withAgentMetadata(node: Node, name: string, m: MachineInfo, now: string): Node {
  return {
    ...node,
    metadata: {
      ...node.metadata,
      labels: { ...(node.metadata?.labels ?? {}), ...nodeLabels(name, m) },
      annotations: { ...(node.metadata?.annotations ?? {}), [HEARTBEAT_ANNOTATION]: now },
    },
  };
}

export function nodeLease(name: string, now: string, existing?: Lease): Lease {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: existing ? { ...existing.metadata } : { name, namespace: NODE_LEASE_NAMESPACE, ownerReferences: [] },
    spec: {
      ...(existing?.spec ?? {}),
      holderIdentity: name,
      leaseDurationSeconds: LEASE_DURATION_SECONDS,
      renewTime: toMicroTime(now),
    },
  };
}

/** Lease times are MicroTime: RFC 3339 with microseconds. */
export function toMicroTime(iso: string): string {
  if (/Z$/.test(iso) && !iso.includes(".")) return iso.replace(/Z$/, ".000000Z");
  return iso.replace(/\.(\d{3})Z$/, ".$1000Z");
}
