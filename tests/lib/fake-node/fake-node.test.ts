// The FAKE node agent used by bench:scale, checked against the real API server (in-memory SQLite, over HTTP) and the
// real controller with its scheduler: 10 VMIs end Running on two fake nodes, with launcher pods Running/Ready, and the
// node agents' writes per VMI are the real handler's (same pure
// status functions, same write-when-different rule).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startApiServer } from "../../../apiserver/index.js";
import {
  type Lease,
  type Node,
  type Pod,
  RestClient,
  resources,
  type VirtualMachineInstance,
} from "../../../client/index.js";
import { VirtController } from "../../../controller/index.js";
import { nullLogger } from "../../../lib/log.js";
import { startFakeNodes } from "./fake-node.js";

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function counter(text: string, match: (labels: string) => boolean): number {
  let n = 0;
  for (const line of text.split("\n")) {
    const m = /^apiserver_request_total\{(.*)\} (\d+)$/.exec(line);
    if (m && match(m[1] ?? "")) n += Number(m[2]);
  }
  return n;
}

describe("fake node agent (bench:scale)", () => {
  it("10 VMIs become Running through the real API server and controller; node-agent writes per VMI bounded like the real handler", async (t) => {
    const api = await startApiServer({ memory: true, logger: nullLogger });
    t.after(() => api.close());
    const mk = (ua: string) => new RestClient({ server: api.url, namespace: "default", userAgent: ua });
    const nodeClient = mk("fake-node-agent");
    const ctrlClient = mk("virt-controller");
    const user = mk("test-user");
    t.after(() => {
      nodeClient.close();
      ctrlClient.close();
      user.close();
    });
    const agents = await startFakeNodes(nodeClient, 2);
    t.after(() => Promise.all(agents.map((a) => a.stop())));
    const ctrl = new VirtController({ client: ctrlClient, log: nullLogger });
    await ctrl.start();
    t.after(() => ctrl.stop());

    const node = await user.get<Node>(resources.nodes, undefined, "fake-node-01");
    assert.equal(node.metadata.labels?.["kubevirt.io/schedulable"], "true");
    assert.equal(node.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    const lease = await user.get<Lease>(resources.leases, "kube-node-lease", "fake-node-01");
    assert.equal((lease as unknown as { spec: { holderIdentity: string } }).spec.holderIdentity, "fake-node-01");

    const N = Number(process.env.FAKE_NODE_N ?? 10);
    for (let i = 0; i < N; i++) {
      await user.create<VirtualMachineInstance>(resources.vmis, "default", {
        apiVersion: "kubevirt.io/v1",
        kind: "VirtualMachineInstance",
        metadata: { name: `vmi-${i}`, namespace: "default" },
        spec: {
          domain: { devices: {}, resources: { requests: { memory: "90Mi", cpu: "100m" } } },
        },
      } as VirtualMachineInstance);
    }
    const vmis = await waitFor("all Running and Ready", async () => {
      const l = await user.list<VirtualMachineInstance>(resources.vmis, "default");
      const ok = l.items.filter(
        (v) => v.status?.phase === "Running" && v.status.conditions?.find((c) => c.type === "Ready")?.status === "True",
      );
      return ok.length === N ? l.items : undefined;
    });
    const nodes = new Set(vmis.map((v) => v.status?.nodeName));
    assert.ok(
      [...nodes].every((n) => n === "fake-node-00" || n === "fake-node-01"),
      [...nodes].join(","),
    );
    for (const v of vmis) {
      assert.deepEqual(
        v.status?.phaseTransitionTimestamps?.map((p) => p.phase),
        ["Pending", "Scheduling", "Scheduled", "Running"],
      );
      assert.match(v.status?.interfaces?.[0]?.ipAddress ?? "", /^10\.244\.[01]\.\d+$/);
    }
    const pods = await user.list<Pod>(resources.pods, "default", { labelSelector: "kubevirt.io=virt-launcher" });
    assert.equal(pods.items.length, N);
    for (const p of pods.items) {
      assert.equal(p.status?.phase, "Running");
      assert.equal(p.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    }
    // Settle: nothing else should be written by the node agents for these VMIs.
    await new Promise((r) => setTimeout(r, 500));
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    console.log(
      metrics
        .split("\n")
        .filter((l) => l.startsWith("apiserver_request_total"))
        .join("\n"),
    );
    const podStatusPuts = counter(
      metrics,
      (l) =>
        l.includes('client="fake-node-agent"') &&
        l.includes('verb="PUT"') &&
        l.includes('resource="pods"') &&
        l.includes('subresource="status"'),
    );
    const vmiPuts = counter(
      metrics,
      (l) =>
        l.includes('client="fake-node-agent"') &&
        l.includes('verb="PUT"') &&
        l.includes('resource="virtualmachineinstances"') &&
        /code="2/.test(l),
    );
    // The real handler's rule: write when the computed status is not deep-equal to the stored one. A 409 against the
    // controller's readiness-gate write can add one more. Bounded, never a loop:
    assert.ok(podStatusPuts >= N && podStatusPuts <= 3 * N, `pods/status PUTs ${podStatusPuts} for ${N} VMIs`);
    assert.ok(vmiPuts >= N && vmiPuts <= 2 * N, `VMI PUTs ${vmiPuts} for ${N} VMIs`);
    assert.equal(
      agents.reduce((s, a) => s + a.errors, 0),
      0,
    );
  });
});
