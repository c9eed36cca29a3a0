import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSubresourcePath, parseRoute } from "./routes.js";

const base = "/apis/subresources.kubevirt.io/v1";

describe("subresource routes", () => {
  const cases: [string, unknown][] = [
    [
      `${base}/namespaces/default/virtualmachines/vm1/start`,
      { kind: "vm", namespace: "default", name: "vm1", verb: "start" },
    ],
    [
      "/apis/subresources.kubevirt.io/v1alpha3/namespaces/ns/virtualmachines/a.b/stop",
      { kind: "vm", namespace: "ns", name: "a.b", verb: "stop" },
    ],
    [
      `${base}/namespaces/default/virtualmachineinstances/vmi/console`,
      { kind: "vmi", namespace: "default", name: "vmi", verb: "console" },
    ],
    [`${base}/version`, { kind: "version" }],
    [`${base}`, { kind: "discovery", version: "v1" }],
  ];
  for (const [path, want] of cases) {
    it(`parses ${path}`, () => assert.deepEqual(parseRoute(path), want));
  }
  for (const path of [
    `${base}/namespaces/default/virtualmachines/vm1/explode`,
    `${base}/namespaces/default/virtualmachineinstances/vm1/start`,
    `${base}/namespaces/Bad_NS/virtualmachines/vm1/start`,
    `${base}/namespaces/default/virtualmachines/..%2F..%2Fetc/start`,
    `${base}/namespaces/default/virtualmachines/vm1/start/extra`,
    "/apis/subresources.kubevirt.io/v9/version",
    `${base}/namespaces/default/virtualmachines/%E0%A4%A/start`,
  ]) {
    it(`rejects ${path}`, () => assert.equal(parseRoute(path).kind, "unknown"));
  }
  it("recognises only its own group", () => {
    assert.equal(isSubresourcePath(`${base}/version`), true);
    assert.equal(isSubresourcePath("/apis/subresources.kubevirt.iox/v1"), false);
    assert.equal(isSubresourcePath("/apis/kubevirt.io/v1"), false);
  });
});
