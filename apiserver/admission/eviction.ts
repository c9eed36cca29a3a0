// KubeVirt's pod-eviction webhook ("virt-launcher-eviction-interceptor.kubevirt.io", virt-api's PodEvictionAdmitter)
// as an in-process AdmissionPlugin on CREATE pods/eviction. For a launcher pod it applies the VMI's eviction strategy:
// a VMI that is to live-migrate (or that is External) is marked with status.evacuationNodeName and the eviction is
// refused with 429, so `kubectl drain` retries until the evacuation controller has migrated it away; a VMI without a
// strategy (None, or LiveMigrateIfPossible when not migratable) lets the eviction through: its pod is deleted.
//
// Deviations from the migration contract §7 / the brief: the 429 carries no Retry-After (see deny()); evicting a migration TARGET pod is refused with 429
// ("Eviction request for target Pod") when the VMI migrates on eviction, as KubeVirt's admitter does; only under
// None does the eviction go through, which deletes the target pod and so fails (cancels) that migration.
import {
  Evacuation,
  type EvictionStrategy,
  isLiveMigratable,
  migratesOnEviction,
  vmiEvictionStrategy,
} from "../../api/index.js";
import { field, isObject, type Rec, rec } from "../../lib/json.js";
import type { AdmissionDecision, AdmissionPlugin, AdmissionRequest, AdmissionReview } from "./types.js";

const LAUNCHER_LABEL = "kubevirt.io";
const DOMAIN_ANNOTATION = "kubevirt.io/domain";

export interface EvictionAdmissionOptions {
  getPod(namespace: string, name: string): Promise<Rec | undefined> | Rec | undefined;
  getVmi(namespace: string, name: string): Promise<Rec | undefined> | Rec | undefined;
  /** The KubeVirt object's spec.configuration.evictionStrategy (undefined: not set). */
  clusterEvictionStrategy(): EvictionStrategy | undefined;
  /**
   * Sets the VMI's status.evacuationNodeName (and, for the descheduler, the eviction-source annotation), as virt-api
   * patches it; honours dryRun. Throws a Status error on failure.
   */
  markVmi(
    namespace: string,
    name: string,
    nodeName: string,
    o: { dryRun: boolean; descheduler: boolean },
  ): Promise<void>;
}

/** What the admitter decides about one eviction of a launcher pod (pure: pod, VMI, strategy in; decision out). */
export type LauncherEvictionDecision =
  | { action: "allow" }
  | { action: "deny"; message: string }
  /** Mark the VMI for evacuation from `node`, then refuse with `message` (429). */
  | { action: "mark"; node: string; message: string };

function isCompleted(pod: Rec): boolean {
  const phase = field(pod, "status.phase");
  return phase === "Succeeded" || phase === "Failed";
}

/** The VMI a launcher pod runs, or undefined when the pod is not a live launcher pod (then eviction is a delete). */
export function launcherVmiName(pod: Rec): string | undefined {
  if (rec(field(pod, "metadata.labels"))[LAUNCHER_LABEL] !== "virt-launcher" || isCompleted(pod)) return undefined;
  const name = rec(field(pod, "metadata.annotations"))[DOMAIN_ANNOTATION];
  return typeof name === "string" && name ? name : undefined;
}

/** KubeVirt's admitLauncherPod, after the VMI was read. */
export function decideLauncherEviction(
  pod: Rec,
  vmi: Rec,
  clusterStrategy: EvictionStrategy | undefined,
): LauncherEvictionDecision {
  const ns = String(field(vmi, "metadata.namespace") ?? "");
  const name = String(field(vmi, "metadata.name") ?? "");
  const strategy = vmiEvictionStrategy(vmi as never, clusterStrategy);
  const migratable = isLiveMigratable(vmi as never);
  if (strategy === "LiveMigrate" && !migratable)
    return {
      action: "deny",
      message: `VMI ${name} is configured with an eviction strategy but is not live-migratable`,
    };
  if (!migratesOnEviction(strategy, migratable) && strategy !== "External") return { action: "allow" };
  // This message format is what the descheduler expects.
  const triggered = `Eviction triggered evacuation of VMI "${ns}/${name}"`;
  if (field(vmi, "status.evacuationNodeName"))
    return { action: "deny", message: `Evacuation in progress: ${triggered}` };
  const node = field(vmi, "status.nodeName");
  if (typeof node !== "string" || !node || node !== field(pod, "spec.nodeName"))
    return { action: "deny", message: "Eviction request for target Pod" };
  return { action: "mark", node, message: triggered };
}

function isDryRun(req: AdmissionRequest): boolean {
  if (req.dryRun) return true;
  const d = field(req.object, "deleteOptions.dryRun");
  return Array.isArray(d) && d[0] === "All";
}

function isDeschedulerEviction(req: AdmissionRequest): boolean {
  const a = rec(field(req.object, "metadata.annotations"));
  return a[Evacuation.requestedByAnnotation] === Evacuation.requestedByDescheduler;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function podEvictionPlugin(opts: EvictionAdmissionOptions): AdmissionPlugin {
  const allow = (req: AdmissionRequest): AdmissionDecision => ({ response: { uid: req.uid, allowed: true } });
  const deny = (req: AdmissionRequest, message: string): AdmissionDecision => ({
    response: {
      uid: req.uid,
      allowed: false,
      // No Retry-After (as KubeVirt's webhook and kube-apiserver's PDB refusal): client-go retries a 429 that
      // carries one silently, up to 10 times, so kubectl drain would not print KubeVirt's message for ~50 s per pod
      // (the e2e saw a whole evacuation pass without one line); kubectl drain retries every 5 s by itself.
      status: { code: 429, reason: "TooManyRequests", message },
    },
  });
  const admit = async (req: AdmissionRequest): Promise<AdmissionDecision> => {
    const ns = req.namespace ?? "";
    const pod = req.name ? await opts.getPod(ns, req.name) : undefined;
    // a missing pod: the API server answers 404 itself
    if (!pod) return allow(req);
    const vmiName = launcherVmiName(pod);
    if (!vmiName) return allow(req);
    let vmi: Rec | undefined;
    try {
      vmi = await opts.getVmi(ns, vmiName);
    } catch (e) {
      return deny(req, `kubevirt failed getting the vmi: ${errorText(e)}`);
    }
    if (!vmi || !isObject(vmi))
      return deny(req, `kubevirt failed getting the vmi: virtualmachineinstances.kubevirt.io "${vmiName}" not found`);
    const d = decideLauncherEviction(pod, vmi, opts.clusterEvictionStrategy());
    if (d.action === "allow") return allow(req);
    if (d.action === "deny") return deny(req, d.message);
    try {
      await opts.markVmi(ns, vmiName, d.node, { dryRun: isDryRun(req), descheduler: isDeschedulerEviction(req) });
    } catch (e) {
      // as in KubeVirt: the caller retries
      return deny(req, `kubevirt failed marking the vmi for eviction: ${errorText(e)}`);
    }
    return deny(req, d.message);
  };
  return {
    name: Evacuation.webhookName,
    type: "validating",
    matches: (req) =>
      req.operation === "CREATE" &&
      req.resource.group === "" &&
      req.resource.resource === "pods" &&
      req.subResource === "eviction",
    admit,
    async review(review: AdmissionReview): Promise<AdmissionReview> {
      const req = review.request;
      if (!req) throw new TypeError("Cannot review an AdmissionReview without a request");
      const d = await admit(req);
      return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: d.response };
    },
  };
}
