// KubeVirt's pod-eviction admitter rules, table-tested (pure decision), and the plugin with fake lookups.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Rec } from "../../lib/json.js";
import { decideLauncherEviction, launcherVmiName, podEvictionPlugin } from "./eviction.js";
import { runAdmission } from "./run.js";
import type { AdmissionRequest } from "./types.js";

function launcher(node = "node01", extra: Rec = {}): Rec {
  return {
    metadata: {
      name: "virt-launcher-v1-abcde",
      namespace: "default",
      labels: { "kubevirt.io": "virt-launcher" },
      annotations: { "kubevirt.io/domain": "v1" },
    },
    spec: { nodeName: node },
    status: { phase: "Running" },
    ...extra,
  };
}

function vmi(o: { strategy?: string; migratable?: boolean; node?: string; marked?: string } = {}): Rec {
  return {
    metadata: { name: "v1", namespace: "default" },
    spec: o.strategy ? { evictionStrategy: o.strategy } : {},
    status: {
      phase: "Running",
      nodeName: o.node ?? "node01",
      ...(o.marked ? { evacuationNodeName: o.marked } : {}),
      conditions:
        o.migratable === undefined ? [] : [{ type: "LiveMigratable", status: o.migratable ? "True" : "False" }],
    },
  };
}

const TRIGGERED = 'Eviction triggered evacuation of VMI "default/v1"';

describe("decideLauncherEviction (KubeVirt's admitLauncherPod)", () => {
  const cases: [string, Rec, string | undefined, ReturnType<typeof decideLauncherEviction>][] = [
    ["no strategy anywhere: None", vmi({ migratable: true }), undefined, { action: "allow" }],
    ["None", vmi({ strategy: "None", migratable: true }), "LiveMigrate", { action: "allow" }],
    [
      "LiveMigrate, migratable",
      vmi({ strategy: "LiveMigrate", migratable: true }),
      undefined,
      {
        action: "mark",
        node: "node01",
        message: TRIGGERED,
      },
    ],
    [
      "LiveMigrate, not migratable",
      vmi({ strategy: "LiveMigrate", migratable: false }),
      undefined,
      {
        action: "deny",
        message: "VMI v1 is configured with an eviction strategy but is not live-migratable",
      },
    ],
    [
      "LiveMigrate, no condition yet",
      vmi({ strategy: "LiveMigrate" }),
      undefined,
      {
        action: "deny",
        message: "VMI v1 is configured with an eviction strategy but is not live-migratable",
      },
    ],
    [
      "LiveMigrateIfPossible, migratable",
      vmi({ strategy: "LiveMigrateIfPossible", migratable: true }),
      undefined,
      {
        action: "mark",
        node: "node01",
        message: TRIGGERED,
      },
    ],
    [
      "LiveMigrateIfPossible, not migratable",
      vmi({ strategy: "LiveMigrateIfPossible", migratable: false }),
      undefined,
      { action: "allow" },
    ],
    [
      "External, not migratable",
      vmi({ strategy: "External", migratable: false }),
      undefined,
      {
        action: "mark",
        node: "node01",
        message: TRIGGERED,
      },
    ],
    [
      "cluster LiveMigrate applies to a VMI without one",
      vmi({ migratable: true }),
      "LiveMigrate",
      {
        action: "mark",
        node: "node01",
        message: TRIGGERED,
      },
    ],
    ["the VMI's None wins over the cluster's", vmi({ strategy: "None" }), "LiveMigrate", { action: "allow" }],
    [
      "already marked",
      vmi({ strategy: "LiveMigrate", migratable: true, marked: "node01" }),
      undefined,
      {
        action: "deny",
        message: `Evacuation in progress: ${TRIGGERED}`,
      },
    ],
    [
      "a migration target pod (VMI on another node)",
      vmi({ strategy: "LiveMigrate", migratable: true, node: "node02" }),
      undefined,
      {
        action: "deny",
        message: "Eviction request for target Pod",
      },
    ],
  ];
  for (const [name, v, cluster, want] of cases) {
    test(name, () => {
      assert.deepEqual(decideLauncherEviction(launcher(), v, cluster as never), want);
    });
  }

  test("only live launcher pods name a VMI", () => {
    assert.equal(launcherVmiName(launcher()), "v1");
    assert.equal(launcherVmiName(launcher("node01", { status: { phase: "Succeeded" } })), undefined);
    assert.equal(launcherVmiName({ metadata: { labels: { app: "x" } } }), undefined);
    assert.equal(launcherVmiName({ metadata: { labels: { "kubevirt.io": "virt-launcher" } } }), undefined);
  });
});

describe("podEvictionPlugin", () => {
  function request(
    o: { name?: string; dryRun?: boolean; annotations?: Record<string, string> } = {},
  ): AdmissionRequest {
    return {
      uid: "u1",
      kind: { group: "policy", version: "v1", kind: "Eviction" },
      resource: { group: "", version: "v1", resource: "pods" },
      subResource: "eviction",
      name: o.name ?? "virt-launcher-v1-abcde",
      namespace: "default",
      operation: "CREATE",
      userInfo: { username: "admin" },
      object: {
        apiVersion: "policy/v1",
        kind: "Eviction",
        metadata: { name: o.name ?? "virt-launcher-v1-abcde", annotations: o.annotations ?? {} },
      },
      dryRun: o.dryRun ?? false,
    };
  }

  function setup(v: Rec | undefined, pod: Rec | undefined = launcher(), fail?: Error) {
    const marks: unknown[] = [];
    const plugin = podEvictionPlugin({
      getPod: () => pod,
      getVmi: () => v,
      clusterEvictionStrategy: () => undefined,
      markVmi: async (ns, name, node, o) => {
        if (fail) throw fail;
        marks.push({ ns, name, node, ...o });
      },
    });
    return { plugin, marks };
  }

  test("matches only CREATE of pods/eviction", () => {
    const { plugin } = setup(vmi());
    assert.equal(plugin.matches(request()), true);
    assert.equal(plugin.matches({ ...request(), subResource: "binding" }), false);
    assert.equal(plugin.matches({ ...request(), subResource: undefined }), false);
  });

  test("marks a migratable LiveMigrate VMI and refuses with 429 TooManyRequests", async () => {
    const { plugin, marks } = setup(vmi({ strategy: "LiveMigrate", migratable: true }));
    const err = await runAdmission([plugin], request()).then(
      () => assert.fail("expected a denial"),
      (e: { status: Record<string, unknown> }) => e,
    );
    assert.equal(err.status.code, 429);
    assert.equal(err.status.reason, "TooManyRequests");
    assert.equal(
      err.status.message,
      `admission webhook "virt-launcher-eviction-interceptor.kubevirt.io" denied the request: ${TRIGGERED}`,
    );
    // no Retry-After: client-go would retry silently and kubectl drain would not print the message
    assert.equal((err.status.details as Rec).retryAfterSeconds, undefined);
    assert.deepEqual(marks, [{ ns: "default", name: "v1", node: "node01", dryRun: false, descheduler: false }]);
  });

  test("dry run and descheduler evictions are passed to the mark", async () => {
    const { plugin, marks } = setup(vmi({ strategy: "External" }));
    const d = await plugin.admit?.(
      request({ dryRun: true, annotations: { "requested-by": "sigs.k8s.io/descheduler" } }),
    );
    assert.equal(d?.response.allowed, false);
    assert.deepEqual(marks, [{ ns: "default", name: "v1", node: "node01", dryRun: true, descheduler: true }]);
  });

  test("a failed mark is a 429 the caller retries", async () => {
    const { plugin } = setup(vmi({ strategy: "LiveMigrate", migratable: true }), launcher(), new Error("conflict"));
    const d = await plugin.admit?.(request());
    assert.equal(d?.response.status?.code, 429);
    assert.equal(d?.response.status?.message, "kubevirt failed marking the vmi for eviction: conflict");
  });

  test("None lets the eviction through; a missing pod or a non-launcher pod too", async () => {
    assert.equal((await setup(vmi({ strategy: "None" })).plugin.admit?.(request()))?.response.allowed, true);
    assert.equal((await setup(vmi(), undefined).plugin.admit?.(request()))?.response.allowed, true);
    const other = { metadata: { name: "web", labels: { app: "web" } }, spec: { nodeName: "node01" } };
    assert.equal((await setup(undefined, other).plugin.admit?.(request({ name: "web" })))?.response.allowed, true);
  });

  test("a launcher pod whose VMI is gone is refused, as KubeVirt does", async () => {
    const d = await setup(undefined).plugin.admit?.(request());
    assert.equal(d?.response.allowed, false);
    assert.match(d?.response.status?.message ?? "", /kubevirt failed getting the vmi/);
  });

  test("the webhook interface gives the same answer", async () => {
    const { plugin } = setup(vmi({ strategy: "LiveMigrate", migratable: false }));
    const review = await plugin.review({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: request(),
    });
    assert.equal(review.response?.allowed, false);
    assert.equal(review.response?.status?.code, 429);
  });
});
