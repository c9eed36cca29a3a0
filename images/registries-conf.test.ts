import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseReference } from "./reference.js";
import { allowsPlainHttp, parseRegistriesConf, resolveSources } from "./registries-conf.js";

const conf = `
# the node's registry list (ConfigMap kubevirt/tsvirt-registries, key registries.conf)
unqualified-search-registries = ["registry.example"]

[[registry]]
prefix = "registry.example/vms"
location = "harbor.example/vms"
insecure = false

[[registry.mirror]]
location = "mirror-b.example:5000/cache/vms"
insecure = true

[[registry.mirror]]
location = 'mirror-a.example/vms'
priority = -1

[[registry]]
location = "plain.example:5000"
insecure = true

[[registry]]
prefix = "blocked.example"
blocked = true

[registries.insecure]
registries = [
  "legacy.example:5000",
]
`;

describe("parseRegistriesConf", () => {
  const cfg = parseRegistriesConf(conf);
  it("reads entries, mirrors and flags", () => {
    assert.deepEqual(cfg.unqualifiedSearchRegistries, ["registry.example"]);
    assert.equal(cfg.registries.length, 3);
    assert.equal(cfg.registries[0]?.mirrors.length, 2);
    assert.deepEqual(cfg.insecure, ["legacy.example:5000"]);
  });
  it("orders mirrors by priority, then the location, rewriting the prefix", () => {
    const src = resolveSources(parseReference("registry.example/vms/fedora:40"), cfg);
    assert.deepEqual(
      src.map((s) => `${s.registry}/${s.repository}|${s.insecure}`),
      [
        "mirror-a.example/vms/fedora|false",
        "mirror-b.example:5000/cache/vms/fedora|true",
        "harbor.example/vms/fedora|false",
      ],
    );
  });
  it("uses the ref's own registry when nothing matches, and honours insecure hosts", () => {
    const [s] = resolveSources(parseReference("legacy.example:5000/x/y:1"), cfg);
    assert.deepEqual(s, { registry: "legacy.example:5000", repository: "x/y", insecure: true });
    assert.ok(allowsPlainHttp(s!));
    const [p] = resolveSources(parseReference("plain.example:5000/a:1"), cfg);
    assert.equal(p?.insecure, true);
    const [q] = resolveSources(parseReference("quay.io/a/b:1"), cfg);
    assert.ok(!allowsPlainHttp(q!));
    assert.ok(allowsPlainHttp({ registry: "127.0.0.1:5000", repository: "a", insecure: false }));
  });
  it("does not match a prefix in the middle of a path component", () => {
    const [s] = resolveSources(parseReference("registry.example/vmsother/a:1"), cfg);
    assert.equal(s?.registry, "registry.example");
  });
  it("refuses blocked registries", () => {
    assert.throws(() => resolveSources(parseReference("blocked.example/a:1"), cfg), /blocked/);
  });
  it("reports syntax errors with a line number", () => {
    assert.throws(() => parseRegistriesConf('[[registry]]\nlocation = "a.example"\nbad line\n'), /line 3/);
    assert.throws(() => parseRegistriesConf('[[registry]]\nlocation = "../../etc"\n'), /not a registry location/);
    assert.throws(() => parseRegistriesConf('[[registry]]\ninsecure = 1\nlocation = "a.b"\n'), /true or false/);
  });
});
