// Which pods the embedded pod runner will run: only launcher pods shaped as virt-controller makes them. The runner
// builds the launcher's command line itself; a pod's command, args and image are never executed.
import type { Condition } from "../api/index.js";
import type { Pod } from "./ports.js";

export const LAUNCHER_LABEL = "kubevirt.io";
export const LAUNCHER_LABEL_VALUE = "virt-launcher";
export const CREATED_BY_LABEL = "kubevirt.io/created-by";
export const COMPUTE_CONTAINER = "compute";
export const UNPAUSED_GATE = "kubevirt.io/virtual-machine-unpaused";

export type PodClass =
  | { kind: "launcher"; vmiName: string; vmiUid: string; namespace: string; podUid: string }
  | { kind: "unsupported"; message: string };

export function classifyPod(pod: Pod): PodClass {
  const md = pod.metadata ?? {};
  const unsupported = (why: string): PodClass => ({
    kind: "unsupported",
    message: `The embedded pod runner runs only virt-launcher pods: ${why}`,
  });
  if (!md.uid || !md.name || !md.namespace) return unsupported("the pod has no uid, name or namespace");
  if (md.labels?.[LAUNCHER_LABEL] !== LAUNCHER_LABEL_VALUE) {
    return unsupported(`label ${LAUNCHER_LABEL}=${LAUNCHER_LABEL_VALUE} is missing`);
  }
  const owners = (md.ownerReferences ?? []).filter(
    (o) => o.controller === true && o.kind === "VirtualMachineInstance" && o.apiVersion.startsWith("kubevirt.io/"),
  );
  const owner = owners[0];
  if (owners.length !== 1 || owner === undefined) {
    return unsupported("it has no controller owner reference to a VirtualMachineInstance");
  }
  if (!(pod.spec?.containers ?? []).some((c) => c.name === COMPUTE_CONTAINER)) {
    return unsupported(`it has no "${COMPUTE_CONTAINER}" container`);
  }
  const createdBy = md.labels?.[CREATED_BY_LABEL];
  if (createdBy !== undefined && createdBy !== owner.uid) {
    return unsupported(`label ${CREATED_BY_LABEL} does not match its owner's uid`);
  }
  return { kind: "launcher", vmiName: owner.name, vmiUid: owner.uid, namespace: md.namespace, podUid: md.uid };
}

/** What the pod runner knows about one pod's process, as a discriminated union. */
export type PodRuntime =
  | { state: "unsupported"; message: string }
  /** Network and launcher being prepared. */
  | { state: "starting" }
  | { state: "start-failed"; message: string }
  | { state: "running"; ip: string; startedAt: string; answering: boolean; unpaused: boolean }
  | {
      state: "exited";
      ip?: string;
      startedAt?: string;
      finishedAt: string;
      exitCode: number;
      reason: string;
      /** The container's termination message (its terminationMessagePath, or its log's tail on error). */
      message?: string;
    };

function cond(type: string, ok: boolean, reason?: string, message?: string): Condition {
  const c: Condition = { type, status: ok ? "True" : "False" };
  if (reason) c.reason = reason;
  if (message) c.message = message;
  return c;
}

/** Keeps lastTransitionTime of conditions whose status did not change; stamps `now` on the others. */
export function mergeConditions(
  old: readonly Condition[] | undefined,
  next: readonly Condition[],
  now: string,
): Condition[] {
  return next.map((c) => {
    const prev = old?.find((o) => o.type === c.type);
    const lastTransitionTime =
      prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now;
    // No lastProbeTime: the API server drops nulls, and a field it drops makes every later compare unequal (an extra write).
    const { lastProbeTime: _probe, ...rest } = c;
    const out: Condition = { ...rest, lastTransitionTime };
    return out;
  });
}

/** The pod status the runner reports for a runtime state (pure). Times of unchanged conditions are kept. */
export function computePodStatus(pod: Pod, rt: PodRuntime, hostIP: string, now: string): Pod["status"] & object {
  const old = pod.status ?? {};
  const gates = (pod.spec?.readinessGates ?? []).map((g) => g.conditionType);
  const containers = pod.spec?.containers ?? [];
  const containerName = containers[0]?.name ?? COMPUTE_CONTAINER;
  const image = containers.find((c) => c.name === COMPUTE_CONTAINER)?.image ?? containers[0]?.image ?? "";
  const startTime = old.startTime ?? now;
  const base = { hostIP, hostIPs: [{ ip: hostIP }], startTime };
  switch (rt.state) {
    case "unsupported":
    case "start-failed": {
      const reason = rt.state === "unsupported" ? "Unsupported" : "StartError";
      return {
        ...base,
        phase: "Failed",
        reason,
        message: rt.message,
        conditions: mergeConditions(
          old.conditions,
          [
            cond("PodScheduled", true),
            cond("Initialized", true),
            cond("ContainersReady", false, reason),
            cond("Ready", false, reason),
          ],
          now,
        ),
        containerStatuses: containers.map((c) => ({
          name: c.name,
          ready: false,
          restartCount: 0,
          image: c.image,
          imageID: "",
          started: false,
          state: { terminated: { exitCode: 128, reason, message: rt.message, finishedAt: now } },
        })),
      };
    }
    case "starting":
      return {
        ...base,
        phase: "Pending",
        conditions: mergeConditions(
          old.conditions,
          [
            cond("PodScheduled", true),
            cond("Initialized", true),
            cond("ContainersReady", false, "ContainersNotReady", `containers with unready status: [${containerName}]`),
            cond("Ready", false, "ContainersNotReady", `containers with unready status: [${containerName}]`),
          ],
          now,
        ),
        containerStatuses: [
          {
            name: containerName,
            ready: false,
            restartCount: 0,
            image,
            imageID: "",
            started: false,
            state: { waiting: { reason: "ContainerCreating" } },
          },
        ],
      };
    case "running": {
      // Readiness-gate conditions belong to whoever defines the gate (virt-controller for the unpaused gate, as in
      // KubeVirt): the runner keeps what it finds, like kubelet. Only the first report seeds the unpaused gate from the
      // domain, which saves virt-controller a write per VM start; two writers would overwrite each other.
      const gateConds: Condition[] = gates.map((g) => {
        const existing = old.conditions?.find((c) => c.type === g);
        if (existing) return existing;
        if (g === UNPAUSED_GATE) return cond(g, rt.unpaused, rt.unpaused ? undefined : "PausedByUser");
        return cond(g, false);
      });
      const gatesOk = gateConds.every((c) => c.status === "True");
      const ready = rt.answering && gatesOk;
      const notReadyReason = !rt.answering ? "ContainersNotReady" : "ReadinessGatesNotReady";
      return {
        ...base,
        phase: "Running",
        podIP: rt.ip,
        podIPs: [{ ip: rt.ip }],
        conditions: mergeConditions(
          old.conditions,
          [
            cond("PodScheduled", true),
            cond("Initialized", true),
            cond("ContainersReady", rt.answering, rt.answering ? undefined : "ContainersNotReady"),
            cond("Ready", ready, ready ? undefined : notReadyReason),
            ...gateConds,
          ],
          now,
        ),
        containerStatuses: [
          {
            name: containerName,
            ready: rt.answering,
            restartCount: 0,
            image,
            imageID: "",
            started: true,
            state: { running: { startedAt: rt.startedAt } },
          },
        ],
      };
    }
    case "exited": {
      const ok = rt.exitCode === 0;
      const st: NonNullable<Pod["status"]> = {
        ...base,
        phase: ok ? "Succeeded" : "Failed",
        conditions: mergeConditions(
          old.conditions,
          [
            cond("PodScheduled", true),
            cond("Initialized", true),
            cond("ContainersReady", false, ok ? "PodCompleted" : "PodFailed"),
            cond("Ready", false, ok ? "PodCompleted" : "PodFailed"),
          ],
          now,
        ),
        containerStatuses: [
          {
            name: containerName,
            ready: false,
            restartCount: 0,
            image,
            imageID: "",
            started: false,
            state: {
              terminated: {
                exitCode: rt.exitCode,
                reason: rt.reason,
                ...(rt.message ? { message: rt.message } : {}),
                finishedAt: rt.finishedAt,
                ...(rt.startedAt ? { startedAt: rt.startedAt } : {}),
              },
            },
          },
        ],
      };
      if (rt.ip) {
        st.podIP = rt.ip;
        st.podIPs = [{ ip: rt.ip }];
      }
      return st;
    }
  }
}
