import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { builtinDefinitions } from "../../api/builtin.js";
import { StatusError } from "../../lib/errors.js";
import { fieldGetters, kindFieldSelectors, metaFieldGetters, parseFieldSelector } from "./index.js";

/** A built-in kind's field selectors, from api/builtin.ts's list (the one source). */
function builtin(plural: string) {
  const d = builtinDefinitions().find((x) => x.crd.spec.group === "" && x.crd.spec.names.plural === plural);
  assert.ok(d, plural);
  return kindFieldSelectors({
    group: "",
    namespaced: d.crd.spec.scope === "Namespaced",
    fieldSelectors: d.fieldSelectors ?? [],
  });
}

const pod = {
  metadata: { name: "virt-launcher-a", namespace: "default" },
  spec: { nodeName: "node1", restartPolicy: "Never" },
  status: { phase: "Running" },
};
const unscheduled = { metadata: { name: "p2", namespace: "kubevirt" }, spec: {}, status: { phase: "Pending" } };

function expect400(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StatusError);
    assert.equal(e.code, 400);
    assert.equal(e.reason, "BadRequest");
    assert.equal(e.message, message);
    return true;
  });
}

describe("field selectors", () => {
  const pods = builtin("pods");
  const cases: [string, unknown, boolean][] = [
    ["", pod, true],
    ["metadata.name=virt-launcher-a", pod, true],
    ["metadata.name==virt-launcher-a", pod, true],
    ["metadata.name!=virt-launcher-a", pod, false],
    ["metadata.namespace=default,spec.nodeName=node1", pod, true],
    ["metadata.namespace=default,spec.nodeName=node2", pod, false],
    ["spec.nodeName=", unscheduled, true],
    ["spec.nodeName!=", pod, true],
    ["status.phase!=Running", unscheduled, true],
    ["status.phase!=Running", pod, false],
  ];
  for (const [sel, obj, want] of cases) {
    it(`${JSON.stringify(sel)} → ${want}`, () => {
      assert.equal(parseFieldSelector(sel, pods.fields, pods).matches(obj), want);
    });
  }

  it("honours escapes in values", () => {
    const sel = parseFieldSelector(String.raw`metadata.name=a\,b\=c`, metaFieldGetters);
    assert.equal(sel.matches({ metadata: { name: "a,b=c" } }), true);
    assert.equal(sel.toString(), String.raw`metadata.name=a\,b\=c`);
  });

  it("exposes a pinned name for single-object watches", () => {
    const sel = parseFieldSelector("metadata.name=x,metadata.namespace!=y", metaFieldGetters);
    assert.equal(sel.requiresExact("metadata.name"), "x");
    assert.equal(sel.requiresExact("metadata.namespace"), undefined);
  });

  it("an unknown field on a custom kind is a 400 with the CRD message", () => {
    expect400(
      () => parseFieldSelector("spec.nodeName=x", metaFieldGetters),
      '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"',
    );
  });

  it("an unknown field on a pod is a 400 with the core message", () => {
    const pods = builtin("pods");
    expect400(() => parseFieldSelector("spec.foo=x", pods.fields, pods), "field label not supported: spec.foo");
  });

  it("a CRD's selectableFields are accepted, by jsonPath", () => {
    const fields = fieldGetters([".status.nodeName", ".spec.replicas"]);
    const sel = parseFieldSelector("status.nodeName=n1,spec.replicas=3", fields);
    assert.equal(sel.matches({ status: { nodeName: "n1" }, spec: { replicas: 3 } }), true);
    assert.equal(sel.matches({ status: { nodeName: "n2" }, spec: { replicas: 3 } }), false);
  });

  it("event selectors kubectl describe sends", () => {
    const ev = builtin("events");
    const sel = parseFieldSelector(
      "involvedObject.kind=VirtualMachine,involvedObject.uid=u1,involvedObject.name=testvm,involvedObject.namespace=default",
      ev.fields,
      ev,
    );
    const event = { involvedObject: { kind: "VirtualMachine", uid: "u1", name: "testvm", namespace: "default" } };
    assert.equal(sel.matches(event), true);
    assert.equal(sel.matches({ ...event, involvedObject: { ...event.involvedObject, uid: "u2" } }), false);
  });

  it("each core kind accepts exactly Kubernetes' set (conversion.go), others the default one", () => {
    // k8s.io/kubernetes pkg/apis/core/v1 conversion.go, field by field
    const meta = "metadata.name metadata.namespace";
    const real: Record<string, string> = {
      pods: `${meta} spec.nodeName spec.restartPolicy spec.schedulerName spec.serviceAccountName spec.hostNetwork
        status.phase status.podIP status.podIPs status.nominatedNodeName`,
      nodes: "metadata.name spec.unschedulable",
      namespaces: "metadata.name status.phase",
      secrets: `${meta} type`,
      services: `${meta} spec.clusterIP spec.type`,
      events: `${meta} involvedObject.kind involvedObject.namespace involvedObject.name involvedObject.uid
        involvedObject.apiVersion involvedObject.resourceVersion involvedObject.fieldPath reason reportingComponent
        source type`,
      configmaps: meta,
      persistentvolumes: meta,
    };
    for (const [plural, want] of Object.entries(real)) {
      assert.deepEqual(Object.keys(builtin(plural).fields).sort(), want.split(/\s+/).sort(), plural);
    }
    expect400(
      () => parseFieldSelector("metadata.namespace=x", builtin("nodes").fields, builtin("nodes")),
      "field label not supported: metadata.namespace",
    );
    expect400(
      () => parseFieldSelector("spec.x=1", builtin("services").fields, builtin("services")),
      "field label not supported: spec.x",
    );
    expect400(
      () => parseFieldSelector("spec.x=1", builtin("configmaps").fields, builtin("configmaps")),
      '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
    );
    const crd = kindFieldSelectors({ group: "kubevirt.io", namespaced: true, fieldSelectors: [".status.nodeName"] });
    expect400(
      () => parseFieldSelector("spec.x=1", crd.fields, crd),
      '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
    );
    assert.equal(
      parseFieldSelector("status.nodeName=n1", crd.fields, crd).matches({ status: { nodeName: "n1" } }),
      true,
    );
    const pods = builtin("pods");
    const hostPod = { ...pod, spec: { ...pod.spec, hostNetwork: true }, status: { podIPs: [{ ip: "10.0.0.5" }] } };
    assert.equal(
      parseFieldSelector("spec.hostNetwork=true,status.podIPs=10.0.0.5", pods.fields, pods).matches(hostPod),
      true,
    );
    assert.equal(parseFieldSelector("spec.hostNetwork=false", pods.fields, pods).matches(pod), true);
    const ev = builtin("events");
    assert.equal(
      parseFieldSelector("source=kubelet", ev.fields, ev).matches({ source: { component: "kubelet" } }),
      true,
    );
  });

  it("syntax errors are 400", () => {
    expect400(
      () => parseFieldSelector("metadata.name", metaFieldGetters),
      "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
    );
    expect400(
      () => parseFieldSelector(String.raw`metadata.name=a\x`, metaFieldGetters),
      String.raw`invalid field selector: invalid escape sequence: \x`,
    );
  });
});
