// Test object factories in the style of KubeVirt's libvmi: newVm(withRunStrategy("Always")), newNode("n1", ...).

import type {
  Node,
  PersistentVolume,
  PersistentVolumeClaim,
  Pod,
  RunStrategy,
  VirtualMachine,
  VirtualMachineInstance,
} from "../../client/index.js";

export type Opt<T> = (o: T) => void;

export function newVmi(name = "testvmi", ...opts: Opt<VirtualMachineInstance>[]): VirtualMachineInstance {
  const vmi: VirtualMachineInstance = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name, namespace: "default", finalizers: ["foregroundDeleteVirtualMachine"] },
    spec: { domain: { resources: { requests: { memory: "128Mi" } }, devices: {} } },
    status: { phase: "Pending" },
  };
  for (const o of opts) o(vmi);
  return vmi;
}

export const withMemory =
  (m: string): Opt<VirtualMachineInstance> =>
  (vmi) => {
    vmi.spec.domain.resources = {
      ...vmi.spec.domain.resources,
      requests: { ...vmi.spec.domain.resources?.requests, memory: m },
    };
  };

export const withNodeSelector =
  (sel: Record<string, string>): Opt<VirtualMachineInstance> =>
  (vmi) => {
    vmi.spec.nodeSelector = sel;
  };

export function newVm(name = "testvm", ...opts: Opt<VirtualMachine>[]): VirtualMachine {
  const vm: VirtualMachine = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace: "default" },
    spec: {
      runStrategy: "Halted",
      template: {
        metadata: { labels: { "kubevirt.io/vm": name }, annotations: { note: "from-template" } },
        spec: { domain: { resources: { requests: { memory: "128Mi" } }, devices: {} } },
      },
    },
  };
  for (const o of opts) o(vm);
  return vm;
}

export const withRunStrategy =
  (rs: RunStrategy): Opt<VirtualMachine> =>
  (vm) => {
    vm.spec.runStrategy = rs;
  };

export const withRunning =
  (running: boolean): Opt<VirtualMachine> =>
  (vm) => {
    delete vm.spec.runStrategy;
    vm.spec.running = running;
  };

export function newNode(
  name: string,
  opts: {
    cpu?: string;
    memory?: string;
    labels?: Record<string, string>;
    ready?: boolean;
    unschedulable?: boolean;
  } = {},
): Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      labels: { "kubernetes.io/hostname": name, "kubevirt.io/schedulable": "true", ...(opts.labels ?? {}) },
    },
    spec: opts.unschedulable ? { unschedulable: true } : {},
    status: {
      capacity: { cpu: opts.cpu ?? "4", memory: opts.memory ?? "8Gi", pods: "110" },
      allocatable: { cpu: opts.cpu ?? "4", memory: opts.memory ?? "8Gi", pods: "110" },
      conditions: [{ type: "Ready", status: opts.ready === false ? "False" : "True", reason: "KubeletReady" }],
    },
  };
}

export function newPod(
  name: string,
  opts: {
    cpu?: string;
    memory?: string;
    nodeName?: string;
    phase?: Pod["status"] extends infer S ? (S extends { phase?: infer P } ? P : never) : never;
  } = {},
): Pod {
  const pod: Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default" },
    spec: {
      containers: [
        { name: "c", image: "x", resources: { requests: { cpu: opts.cpu ?? "100m", memory: opts.memory ?? "100Mi" } } },
      ],
    },
    status: { phase: opts.phase ?? "Pending" },
  };
  if (opts.nodeName) pod.spec.nodeName = opts.nodeName;
  return pod;
}

/** A ReadWriteOnce claim in "default" of the size, without a class (the default class applies). */
export function newClaim(
  name: string,
  size: string,
  spec: Partial<PersistentVolumeClaim["spec"]> = {},
  selectedNode?: string,
): PersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: {
      name,
      namespace: "default",
      ...(selectedNode ? { annotations: { "volume.kubernetes.io/selected-node": selectedNode } } : {}),
    },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: size } }, ...spec },
  };
}

/** A tsvirt-local volume pinned to `node` (node affinity on kubernetes.io/hostname), bound to the claim if named. */
export function newLocalVolume(
  name: string,
  node: string,
  claim?: { namespace?: string; name: string; uid?: string },
): PersistentVolume {
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name, annotations: { "pv.kubernetes.io/provisioned-by": "tsvirt.io/local" } },
    spec: {
      capacity: { storage: "1Gi" },
      accessModes: ["ReadWriteOnce"],
      storageClassName: "tsvirt-local",
      local: { path: `volumes/${name}` },
      ...(claim ? { claimRef: { namespace: claim.namespace ?? "default", ...claim } } : {}),
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node] }] },
          ],
        },
      },
    },
    status: { phase: claim ? "Bound" : "Available" },
  };
}
