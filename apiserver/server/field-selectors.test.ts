// Stock kubectl's --field-selector against the embedded server: the core kinds' fields Kubernetes selects on
// (api/builtin.ts, the one list), and the refusal a real cluster gives for any other field.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { nullLogger } from "../../lib/log.js";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import { type ApiServer, startApiServer, writeKubeconfig } from "../index.js";

let api: ApiServer;
let dir: string;
let kubeconfig: string;

function kubectl(...args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) =>
    execFile("kubectl", args, { env: { ...process.env, KUBECONFIG: kubeconfig }, timeout: 60_000 }, (err, out, e) =>
      resolve({ ok: !err, out: err ? e : out }),
    ),
  );
}

async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(api.url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const o = (await r.json()) as Record<string, unknown>;
  assert.equal(r.status, 201, JSON.stringify(o));
  return o;
}

async function names(...args: string[]): Promise<string[]> {
  const r = await kubectl("get", ...args, "-o", "name");
  assert.ok(r.ok, r.out);
  return r.out.split("\n").filter(Boolean).sort();
}

describe("kubectl --field-selector", () => {
  before(async () => {
    requirePrereqs("kubectl");
    api = await startApiServer({ memory: true, logger: nullLogger });
    dir = await mkdtemp(join(tmpdir(), "tsv-fsel-"));
    kubeconfig = join(dir, "kubeconfig");
    writeKubeconfig(kubeconfig, api.url);
    const pod = (name: string, nodeName: string, phase: string, hostNetwork = false) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name },
      spec: { nodeName, hostNetwork, containers: [{ name: "c", image: "busybox" }] },
      status: { phase },
    });
    await post("/api/v1/namespaces/default/pods", pod("a", "n1", "Running"));
    await post("/api/v1/namespaces/default/pods", pod("b", "n2", "Pending", true));
    await post("/api/v1/namespaces/default/services", { metadata: { name: "s1" }, spec: { ports: [{ port: 80 }] } });
    await post("/api/v1/namespaces/default/services", {
      metadata: { name: "s2" },
      spec: { type: "NodePort", ports: [{ port: 80 }] },
    });
    const event = (name: string, type: string) => ({
      metadata: { name },
      involvedObject: { kind: "VirtualMachine", name: "vm1", namespace: "default" },
      reason: "R",
      message: "m",
      type,
      source: { component: "virt-controller" },
    });
    await post("/api/v1/namespaces/default/events", event("e1", "Warning"));
    await post("/api/v1/namespaces/default/events", event("e2", "Normal"));
  });
  after(async () => {
    await api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("pods: spec.nodeName, spec.hostNetwork, and !=", async () => {
    assert.deepEqual(await names("pods", "--field-selector", "spec.nodeName=n1"), ["pod/a"]);
    assert.deepEqual(await names("pods", "--field-selector", "spec.hostNetwork=true"), ["pod/b"]);
    assert.deepEqual(await names("pods", "-A", "--field-selector", "spec.nodeName!=n1,metadata.namespace=default"), [
      "pod/b",
    ]);
  });

  it("services: spec.type (Kubernetes selects services on spec.clusterIP and spec.type)", async () => {
    assert.deepEqual(await names("services", "--field-selector", "spec.type=NodePort"), ["service/s2"]);
  });

  it("events: involvedObject, type and source, as kubectl describe and kubectl events use them", async () => {
    const got = await names(
      "events",
      "--field-selector",
      "involvedObject.kind=VirtualMachine,involvedObject.name=vm1,type=Warning,source=virt-controller",
    );
    assert.deepEqual(got, ["event/e1"]);
  });

  it("any other field is refused as a real cluster refuses it", async () => {
    const pods = await kubectl("get", "pods", "--field-selector", "spec.foo=x");
    assert.equal(pods.ok, false);
    assert.match(pods.out, /field label not supported: spec\.foo/);
    const nodes = await kubectl("get", "nodes", "--field-selector", "metadata.namespace=x");
    assert.match(nodes.out, /field label not supported: metadata\.namespace/);
    const cms = await kubectl("get", "configmaps", "--field-selector", "data.x=1");
    assert.match(cms.out, /"data\.x" is not a known field selector: only "metadata\.name", "metadata\.namespace"/);
  });
});
