import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusError } from "../../lib/errors.js";
import {
  coreFieldSelectors,
  fieldGetters,
  metaFieldGetters,
  parseFieldSelector,
  unknownFieldMessageFor,
} from "./index.js";

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
  const pods = coreFieldSelectors.pods!;
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
    const pods = coreFieldSelectors.pods!;
    expect400(() => parseFieldSelector("spec.foo=x", pods.fields, pods), "field label not supported: spec.foo");
  });

  it("a CRD's selectableFields are accepted, by jsonPath", () => {
    const fields = fieldGetters([".status.nodeName", ".spec.replicas"]);
    const sel = parseFieldSelector("status.nodeName=n1,spec.replicas=3", fields);
    assert.equal(sel.matches({ status: { nodeName: "n1" }, spec: { replicas: 3 } }), true);
    assert.equal(sel.matches({ status: { nodeName: "n2" }, spec: { replicas: 3 } }), false);
  });

  it("event selectors kubectl describe sends", () => {
    const ev = coreFieldSelectors.events!;
    const sel = parseFieldSelector(
      "involvedObject.kind=VirtualMachine,involvedObject.uid=u1,involvedObject.name=testvm,involvedObject.namespace=default",
      ev.fields,
      ev,
    );
    const event = { involvedObject: { kind: "VirtualMachine", uid: "u1", name: "testvm", namespace: "default" } };
    assert.equal(sel.matches(event), true);
    assert.equal(sel.matches({ ...event, involvedObject: { ...event.involvedObject, uid: "u2" } }), false);
  });

  it("accepts the selectable field names a registry keeps (a Set), with the kind's message", () => {
    const names = new Set(["spec.nodeName", "status.phase", "spec.hostNetwork", "source"]);
    const pods = parseFieldSelector("spec.nodeName=node1,spec.hostNetwork=false", names, {
      unknownFieldMessage: unknownFieldMessageFor("", "pods"),
    });
    assert.equal(pods.matches(pod), true);
    assert.equal(parseFieldSelector("source=kubelet", names).matches({ source: { component: "kubelet" } }), true);
    expect400(
      () => parseFieldSelector("spec.x=1", names, { unknownFieldMessage: unknownFieldMessageFor("", "pods") }),
      "field label not supported: spec.x",
    );
    expect400(
      () =>
        parseFieldSelector("spec.x=1", [], {
          unknownFieldMessage: unknownFieldMessageFor("kubevirt.io", "virtualmachines"),
        }),
      '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
    );
    expect400(
      () => parseFieldSelector("spec.x=1", [], { unknownFieldMessage: unknownFieldMessageFor("", "configmaps") }),
      '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
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
