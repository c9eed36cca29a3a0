// What a caller may do. Until full RBAC (later work) this is a small static table: the administrator may do
// everything; each KubeVirt component's service account may do what its ClusterRole in KubeVirt allows, narrowed to
// what the tsvirt component really does. The same function answers every request and every
// SelfSubjectAccessReview, so `kubectl auth can-i` tells the truth.
import { SERVICE_ACCOUNTS, serviceAccountUser } from "../../api/kubevirt/v1/well-known.js";
import type { UserInfo } from "./identity.js";

export interface ResourceAttributes {
  verb: string;
  group: string;
  /** plural, or `plural/subresource` */
  resource: string;
  namespace?: string;
  name?: string;
}

export interface Rule {
  groups: readonly string[];
  resources: readonly string[];
  verbs: readonly string[];
}

const READ = ["get", "list", "watch"] as const;
const ALL = ["*"] as const;
const KUBEVIRT_GROUPS = [
  "kubevirt.io",
  "pool.kubevirt.io",
  "snapshot.kubevirt.io",
  "cdi.kubevirt.io",
  "migrations.kubevirt.io",
];

/** Every authenticated caller: ask what it may do (SelfSubjectAccessReview). Non-resource URLs are open to all. */
const AUTHENTICATED: Rule[] = [
  { groups: ["authorization.k8s.io"], resources: ["selfsubjectaccessreviews"], verbs: ["create"] },
];

/** The static permission table (documented in the report and README): service account → rules. */
export const SERVICE_ACCOUNT_RULES: Readonly<Record<string, readonly Rule[]>> = {
  // virt-controller: owns VMs, VMIs, migrations, replica sets, pools; creates and binds launcher pods (embedded
  // scheduler), allocates pod CIDRs, fails VMIs of lost nodes, elects a leader; the DataVolume controller (the
  // cdi.kubevirt.io groups' `*`: DVs and their status, CDIConfig) makes the DVs' claims and worker pods
  [serviceAccountUser(SERVICE_ACCOUNTS.controller)]: [
    { groups: KUBEVIRT_GROUPS, resources: ["*"], verbs: ALL },
    {
      groups: [""],
      resources: [
        "pods",
        "pods/status",
        "pods/binding",
        "events",
        "nodes",
        "nodes/status",
        // the PV binder and the tsvirt-local provisioner (storage/)
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "persistentvolumes",
        "persistentvolumes/status",
      ],
      verbs: ALL,
    },
    { groups: ["storage.k8s.io"], resources: ["storageclasses", "csistoragecapacities"], verbs: ALL },
    { groups: [""], resources: ["namespaces", "configmaps", "secrets", "services", "serviceaccounts"], verbs: READ },
    { groups: ["coordination.k8s.io"], resources: ["leases"], verbs: ALL },
    { groups: ["apps"], resources: ["controllerrevisions"], verbs: ALL },
  ],
  // virt-handler (and, in embedded mode, the kubelet's pod runner): its node, the pods and VMIs on it
  [serviceAccountUser(SERVICE_ACCOUNTS.handler)]: [
    {
      groups: ["kubevirt.io"],
      resources: ["virtualmachineinstances", "virtualmachineinstancemigrations"],
      verbs: [...READ, "update", "patch"],
    },
    { groups: ["kubevirt.io"], resources: ["virtualmachines", "kubevirts"], verbs: READ },
    // worker pods (importer, upload, clone source) resolve their job from the DV, its claim and volume, and the
    // source's Secrets/ConfigMaps; the agent relays their progress as a pod annotation (pods: patch). Never DV status.
    { groups: ["cdi.kubevirt.io"], resources: ["datavolumes"], verbs: READ },
    { groups: [""], resources: ["pods", "pods/status", "events", "nodes", "nodes/status"], verbs: ALL },
    { groups: [""], resources: ["configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts"], verbs: READ },
    // its node's local volumes: made and removed on the node, then the PV's finalizer released
    { groups: [""], resources: ["persistentvolumes"], verbs: [...READ, "update", "patch"] },
    { groups: ["storage.k8s.io"], resources: ["storageclasses"], verbs: READ },
    { groups: [""], resources: ["namespaces", "services"], verbs: READ },
    { groups: ["coordination.k8s.io"], resources: ["leases"], verbs: ALL },
  ],
  // virt-api: the subresources (start/stop/restart/migrate/pause ...) act on VMs, VMIs and migrations
  [serviceAccountUser(SERVICE_ACCOUNTS.apiserver)]: [
    {
      groups: ["kubevirt.io"],
      resources: [
        "virtualmachines",
        "virtualmachines/status",
        "virtualmachineinstances",
        "virtualmachineinstancemigrations",
      ],
      verbs: ALL,
    },
    { groups: ["kubevirt.io"], resources: ["kubevirts"], verbs: READ },
    { groups: [""], resources: ["pods", "nodes"], verbs: READ },
    { groups: [""], resources: ["events"], verbs: ["create", "patch"] },
  ],
};

function has(list: readonly string[], v: string): boolean {
  return list.includes("*") || list.includes(v);
}

function ruleAllows(rule: Rule, a: ResourceAttributes): boolean {
  return has(rule.groups, a.group) && has(rule.resources, a.resource) && has(rule.verbs, a.verb);
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

export function authorize(user: UserInfo, a: ResourceAttributes): Decision {
  if (user.groups.includes("system:masters")) return { allowed: true, reason: "system:masters may do everything" };
  // CDI's upload token: whoever may create or update DataVolumes in the namespace may ask for one
  if (a.group === "upload.cdi.kubevirt.io" && a.resource === "uploadtokenrequests" && a.verb === "create") {
    const dv = {
      group: "cdi.kubevirt.io",
      resource: "datavolumes",
      ...(a.namespace ? { namespace: a.namespace } : {}),
    };
    const d = authorize(user, { ...dv, verb: "create" });
    return d.allowed ? d : authorize(user, { ...dv, verb: "update" });
  }
  if (AUTHENTICATED.some((r) => ruleAllows(r, a))) return { allowed: true, reason: "allowed to every user" };
  const rules = SERVICE_ACCOUNT_RULES[user.username] ?? [];
  if (rules.some((r) => ruleAllows(r, a)))
    return { allowed: true, reason: `allowed by tsvirt's table for ${user.username}` };
  return { allowed: false, reason: `no rule of tsvirt's static table allows ${user.username} this` };
}

/** kube-apiserver's Forbidden message: `pods "x" is forbidden: User "u" cannot get resource "pods" ...`. */
export function forbiddenMessage(user: UserInfo, a: ResourceAttributes): string {
  const [res, sub] = a.resource.split("/");
  const what = `${res}${a.group ? `.${a.group}` : ""}`;
  const subText = sub ? ` subresource "${sub}"` : "";
  const scope = a.namespace ? ` in the namespace "${a.namespace}"` : " at the cluster scope";
  return `${what}${a.name ? ` "${a.name}"` : ""} is forbidden: User "${user.username}" cannot ${a.verb} resource "${res}"${subText} in API group "${a.group}"${scope}`;
}

/**
 * The answer to a SelfSubjectAccessReview body from `user`: resource attributes through authorize(); non-resource
 * URLs (discovery, OpenAPI, health, version, metrics) are open to every authenticated user.
 */
export function reviewAccess(user: UserInfo, spec: unknown): Decision {
  const s = isRecord(spec) ? spec : {};
  if (isRecord(s.resourceAttributes)) {
    const ra = s.resourceAttributes;
    const str = (v: unknown): string => (typeof v === "string" ? v : "");
    const sub = str(ra.subresource);
    const a: ResourceAttributes = {
      verb: str(ra.verb),
      group: str(ra.group),
      resource: sub ? `${str(ra.resource)}/${sub}` : str(ra.resource),
    };
    if (str(ra.namespace)) a.namespace = str(ra.namespace);
    if (str(ra.name)) a.name = str(ra.name);
    return authorize(user, a);
  }
  if (isRecord(s.nonResourceAttributes)) return { allowed: true, reason: "non-resource URLs are open to every user" };
  return { allowed: false, reason: "spec names neither resourceAttributes nor nonResourceAttributes" };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
