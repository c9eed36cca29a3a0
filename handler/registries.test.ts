import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeClient, type KObject, type ResourceRef } from "../client/index.js";
import { parseRegistriesConf } from "../images/index.js";
import { REGISTRIES_CONFIGMAP, RegistriesSource, registriesFrom } from "./registries.js";

const ref: ResourceRef = { group: "", version: "v1", resource: "configmaps", namespaced: true, kind: "ConfigMap" };
const conf = (location: string) => `[[registry]]\nprefix = "registry.example"\nlocation = "${location}"\n`;
const locations = (c: { registries: { location: string }[] }) => c.registries.map((r) => r.location);

function configMap(text: string | undefined, name = REGISTRIES_CONFIGMAP.name): KObject & { data?: object } {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: REGISTRIES_CONFIGMAP.namespace },
    ...(text === undefined ? {} : { data: { [REGISTRIES_CONFIGMAP.key]: text } }),
  };
}

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("registriesFrom: the ConfigMap wins; without it, or when it is bad, the flag's list (and an error naming it)", () => {
  const flag = parseRegistriesConf(conf("flag.example"));
  assert.deepEqual(locations(registriesFrom(undefined, flag).config), ["flag.example"]);
  assert.equal(registriesFrom(undefined, undefined).source, "none");
  const cm = registriesFrom({ data: { "registries.conf": conf("cm.example") } }, flag);
  assert.deepEqual([cm.source, locations(cm.config)], ["configmap", ["cm.example"]]);
  const bad = registriesFrom({ data: { "registries.conf": "[[registry]\n" } }, flag);
  assert.deepEqual([bad.source, locations(bad.config)], ["flag", ["flag.example"]]);
  assert.match(bad.error ?? "", /ConfigMap kubevirt\/tsvirt-registries: registries\.conf line 1/);
  assert.match(registriesFrom({ data: {} }, flag).error ?? "", /has no key "registries.conf"/);
});

test("RegistriesSource follows the ConfigMap live: created, updated, deleted", async (t) => {
  const client = new FakeClient();
  const source = new RegistriesSource({ client, fallback: parseRegistriesConf(conf("flag.example")) });
  source.start();
  t.after(() => source.stop());
  assert.deepEqual(locations(await source.current()), ["flag.example"]);
  // another ConfigMap in the namespace changes nothing
  await client.create(ref, "kubevirt", configMap(conf("other.example"), "unrelated"));
  await client.create(ref, "kubevirt", configMap(conf("one.example")));
  await until("the ConfigMap's list", async () => locations(await source.current())[0] === "one.example");
  const cur = (await client.get(ref, REGISTRIES_CONFIGMAP.namespace, REGISTRIES_CONFIGMAP.name)) as KObject;
  await client.update(ref, { ...cur, data: { [REGISTRIES_CONFIGMAP.key]: conf("two.example") } });
  await until("the updated list", async () => locations(await source.current())[0] === "two.example");
  await client.delete(ref, REGISTRIES_CONFIGMAP.namespace, REGISTRIES_CONFIGMAP.name);
  await until("the flag's list again", async () => locations(await source.current())[0] === "flag.example");
});
