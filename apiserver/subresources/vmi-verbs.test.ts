import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import { FakeClient, resources } from "../../client/index.js";
import { serveSubresources } from "./testing.js";

const SR = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances";

/** virt-api's subresources over a FakeClient, with a node agent on loopback that records what reaches it. */
async function setup(t: TestContext, vmi: { paused?: boolean; acpi?: boolean; phase?: string } = {}) {
  const agentPaths: string[] = [];
  const agent = http.createServer((req, res) => {
    agentPaths.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(202);
    res.end();
  });
  await new Promise<void>((r) => agent.listen(0, "127.0.0.1", r));
  t.after(() => agent.close());
  const client = new FakeClient();
  client.seed(resources.nodes, {
    metadata: { name: "node01" },
    status: {
      addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
      daemonEndpoints: { kubeletEndpoint: { Port: (agent.address() as AddressInfo).port } },
    },
  } as never);
  client.seed(resources.vmis, {
    metadata: { name: "vm1", namespace: "default" },
    spec: { domain: vmi.acpi === false ? { features: { acpi: { enabled: false } } } : {} },
    status: {
      phase: vmi.phase ?? "Running",
      nodeName: "node01",
      conditions: vmi.paused ? [{ type: "Paused", status: "True", reason: "PausedByUser" }] : [],
    },
  } as never);
  const base = await serveSubresources(t, client);
  const call = async (method: string, path: string) => {
    const r = await fetch(`${base}${SR}/${path}`, { method, body: method === "PUT" ? "{}" : undefined });
    const text = await r.text();
    return { code: r.status, body: text ? (JSON.parse(text) as { message?: string; reason?: string }) : {} };
  };
  return { call, agentPaths };
}

describe("virt-api VMI verbs", () => {
  it("pause, softreboot and reset of a running VMI are carried to its node agent (202)", async (t) => {
    const s = await setup(t);
    for (const verb of ["pause", "softreboot", "reset"]) assert.equal((await s.call("PUT", `vm1/${verb}`)).code, 202);
    assert.deepEqual(s.agentPaths, [
      "PUT /v1/namespaces/default/virtualmachineinstances/vm1/pause",
      "PUT /v1/namespaces/default/virtualmachineinstances/vm1/softreboot",
      "PUT /v1/namespaces/default/virtualmachineinstances/vm1/reset",
    ]);
  });

  it("answers 409 with KubeVirt's messages and reaches no node agent", async (t) => {
    const paused = await setup(t, { paused: true });
    const cases: [typeof paused, string, string, RegExp][] = [
      [paused, "PUT", "vm1/pause", /VMI is already paused/],
      [paused, "PUT", "vm1/softreboot", /VMI is paused/],
      [await setup(t), "PUT", "vm1/unpause", /VMI is not paused/],
      [await setup(t, { acpi: false }), "PUT", "vm1/softreboot", /neither have the agent connected nor the ACPI/],
      [await setup(t, { phase: "Scheduled" }), "PUT", "vm1/reset", /VMI is not running/],
      [await setup(t), "GET", "vm1/guestosinfo", /VMI does not have guest agent connected/],
    ];
    for (const [s, method, path, re] of cases) {
      const r = await s.call(method, path);
      assert.equal(r.code, 409, `${method} ${path}`);
      assert.equal(r.body.reason, "Conflict");
      assert.match(r.body.message ?? "", re);
      assert.deepEqual(s.agentPaths, []);
    }
  });
});
