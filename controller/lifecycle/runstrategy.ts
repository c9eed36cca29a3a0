// The runStrategy table (kubevirt-api.md §1.4) as pure functions, shared by the VM controller and virt-api's
// start/stop/restart subresources: given the VM and its VMI, what to patch, or the 409 KubeVirt answers.

import type {
  JsonPatchOp,
  RunStrategy,
  StateChangeRequest,
  VirtualMachine,
  VirtualMachineInstance,
} from "../../client/index.js";
import { conflict, type StatusError } from "../../lib/errors.js";

const vmResource = { group: "kubevirt.io", resource: "virtualmachine" };

/** spec.runStrategy, else the deprecated spec.running (true → Always, false → Halted), else Halted. */
export function runStrategyOf(vm: VirtualMachine): RunStrategy {
  if (vm.spec.runStrategy) return vm.spec.runStrategy;
  if (vm.spec.running === true) return "Always";
  return "Halted";
}

export function isFinal(vmi: VirtualMachineInstance | undefined): boolean {
  return vmi?.status?.phase === "Succeeded" || vmi?.status?.phase === "Failed";
}

/** A VMI that exists, is not final and has been processed (KubeVirt's "VM is already running" test). */
function isActive(vmi: VirtualMachineInstance | undefined): boolean {
  return vmi !== undefined && !isFinal(vmi) && (vmi.status?.phase ?? "") !== "" && vmi.status?.phase !== "Unknown";
}

/** One patch to send: to the VM object itself (`spec.runStrategy`) or to its status subresource. */
export interface LifecyclePatch {
  subresource: "" | "status";
  ops: JsonPatchOp[];
}

export type LifecyclePlan = { ok: true; patches: LifecyclePatch[] } | { ok: false; error: StatusError };

function reject(vm: VirtualMachine, why: string): LifecyclePlan {
  return { ok: false, error: conflict(vmResource, vm.metadata.name ?? "", why) };
}

/** Switches the run strategy with a `test` on the old value, so a concurrent change is a 409. */
function strategyPatch(vm: VirtualMachine, to: RunStrategy): LifecyclePatch {
  if (vm.spec.runStrategy === undefined && vm.spec.running !== undefined) {
    return {
      subresource: "",
      ops: [
        { op: "test", path: "/spec/running", value: vm.spec.running },
        { op: "replace", path: "/spec/running", value: to !== "Halted" },
      ],
    };
  }
  if (vm.spec.runStrategy === undefined) {
    return { subresource: "", ops: [{ op: "add", path: "/spec/runStrategy", value: to }] };
  }
  return {
    subresource: "",
    ops: [
      { op: "test", path: "/spec/runStrategy", value: vm.spec.runStrategy },
      { op: "replace", path: "/spec/runStrategy", value: to },
    ],
  };
}

/** Appends state change requests, testing the current list so concurrent requests do not interleave. */
function requestPatch(vm: VirtualMachine, reqs: StateChangeRequest[]): LifecyclePatch {
  const cur = vm.status?.stateChangeRequests;
  if (cur === undefined || cur.length === 0) {
    const ops: JsonPatchOp[] = [];
    if (vm.status === undefined) ops.push({ op: "add", path: "/status", value: {} });
    else if (cur !== undefined) ops.push({ op: "test", path: "/status/stateChangeRequests", value: cur });
    ops.push({ op: "add", path: "/status/stateChangeRequests", value: reqs });
    return { subresource: "status", ops };
  }
  return {
    subresource: "status",
    ops: [
      { op: "test", path: "/status/stateChangeRequests", value: cur },
      { op: "replace", path: "/status/stateChangeRequests", value: [...cur, ...reqs] },
    ],
  };
}

export interface StartOptions {
  paused?: boolean;
}

/** PUT .../virtualmachines/NAME/start */
export function planStart(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  opts: StartOptions = {},
): LifecyclePlan {
  const rs = runStrategyOf(vm);
  if (isActive(vmi)) return reject(vm, "VM is already running");
  const startReq: StateChangeRequest = opts.paused
    ? { action: "Start", data: { startPaused: "true" } }
    : { action: "Start" };
  switch (rs) {
    case "Always":
    case "Once":
    case "WaitAsReceiver":
      return reject(vm, `${rs} does not support manual start requests`);
    case "Halted": {
      const patches = [strategyPatch(vm, "Always")];
      if (opts.paused) patches.push(requestPatch(vm, [startReq]));
      return { ok: true, patches };
    }
    case "RerunOnFailure":
      if (vmi?.status?.phase === "Failed")
        return reject(vm, "RerunOnFailure does not support starting VM from failed state");
      return {
        ok: true,
        patches: [
          requestPatch(vm, vmi && isFinal(vmi) ? [{ action: "Stop", uid: vmi.metadata.uid! }, startReq] : [startReq]),
        ],
      };
    case "Manual":
      return {
        ok: true,
        patches: [
          requestPatch(vm, vmi && isFinal(vmi) ? [{ action: "Stop", uid: vmi.metadata.uid! }, startReq] : [startReq]),
        ],
      };
  }
}

export interface StopOptions {
  gracePeriod?: number;
}

/** PUT .../virtualmachines/NAME/stop */
export function planStop(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  opts: StopOptions = {},
): LifecyclePlan {
  const rs = runStrategyOf(vm);
  const running = vmi !== undefined && !isFinal(vmi);
  switch (rs) {
    case "Halted":
      // Already halting: only a forced, shorter grace period is accepted (the caller patches the VMI's grace).
      if (!running || opts.gracePeriod === undefined) return reject(vm, "VM is not running");
      return { ok: true, patches: [] };
    case "Always":
    case "Once":
    case "WaitAsReceiver":
      return { ok: true, patches: [strategyPatch(vm, "Halted")] };
    case "RerunOnFailure":
    case "Manual":
      if (!running) return reject(vm, "VM is not running");
      return { ok: true, patches: [requestPatch(vm, [{ action: "Stop", uid: vmi.metadata.uid! }])] };
  }
}

/** PUT .../virtualmachines/NAME/restart */
export function planRestart(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): LifecyclePlan {
  const rs = runStrategyOf(vm);
  if (rs === "Halted" || rs === "Once" || rs === "WaitAsReceiver") {
    return reject(vm, `${rs} does not support manual restart requests`);
  }
  if (vmi === undefined || vmi.metadata.deletionTimestamp) return reject(vm, "VM is not running");
  return { ok: true, patches: [requestPatch(vm, [{ action: "Stop", uid: vmi.metadata.uid! }, { action: "Start" }])] };
}
