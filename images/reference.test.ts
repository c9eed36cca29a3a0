import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatReference, isLoopbackHost, parseReference } from "./reference.js";

describe("parseReference", () => {
  const cases: [string, string][] = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["quay.io/kubevirt/cirros-container-disk-demo:v1.2", "quay.io/kubevirt/cirros-container-disk-demo:v1.2"],
    ["127.0.0.1:5000/demo/disk", "127.0.0.1:5000/demo/disk:latest"],
    ["localhost/a/b:t", "localhost/a/b:t"],
    [`reg.example:443/a@sha256:${"a".repeat(64)}`, `reg.example:443/a@sha256:${"a".repeat(64)}`],
    [`r.io/a:t@sha256:${"b".repeat(64)}`, `r.io/a:t@sha256:${"b".repeat(64)}`],
  ];
  for (const [input, want] of cases)
    it(`normalizes ${input}`, () => assert.equal(formatReference(parseReference(input)), want));
  for (const bad of ["", "UPPER/case", "a/../b", "r.io/a@sha256:xyz", "r.io/a:t t", "r.io/a:-bad"]) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseReference(bad)));
  }
});

describe("isLoopbackHost", () => {
  it("knows loopback", () => {
    for (const h of ["127.0.0.1:5000", "127.8.9.1", "localhost:1", "[::1]:5000"]) assert.ok(isLoopbackHost(h), h);
    for (const h of ["10.0.0.1:5000", "registry.example", "128.0.0.1", "localhost.evil.com"])
      assert.ok(!isLoopbackHost(h), h);
  });
});
