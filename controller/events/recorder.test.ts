import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Event, FakeClient, resources } from "../../client/index.js";
import { nullLogger } from "../../lib/log.js";
import { newVmi } from "../testing/factories.js";
import { EventRecorder } from "./recorder.js";

describe("EventRecorder", () => {
  it("records an Event with the involved object and aggregates repeats into count/lastTimestamp", async () => {
    const c = new FakeClient();
    let t = Date.parse("2026-01-01T00:00:00Z");
    const rec = new EventRecorder(c, "virt-controller", nullLogger, () => new Date(t));
    const [vmi] = c.seed(resources.vmis, newVmi("v1"));
    rec.event(vmi!, "Normal", "SuccessfulCreate", "Created virtual machine pod virt-launcher-v1-abcde");
    t += 5000;
    rec.event(vmi!, "Normal", "SuccessfulCreate", "Created virtual machine pod virt-launcher-v1-abcde");
    rec.event(vmi!, "Warning", "FailedScheduling", "0/1 nodes are available: 1 Insufficient memory.");
    await rec.flush();
    const evs = c.all<Event>(resources.events);
    assert.equal(evs.length, 2);
    const created = evs.find((e) => e.reason === "SuccessfulCreate")!;
    assert.equal(created.count, 2);
    assert.equal(created.firstTimestamp, "2026-01-01T00:00:00Z");
    assert.equal(created.lastTimestamp, "2026-01-01T00:00:05Z");
    assert.deepEqual(created.involvedObject, {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstance",
      namespace: "default",
      name: "v1",
      uid: vmi!.metadata.uid,
      resourceVersion: vmi!.metadata.resourceVersion,
    });
    assert.equal(created.source?.component, "virt-controller");
  });

  it("forComponent: the same queue and repeat cache, events attributed to the other component", async () => {
    const c = new FakeClient();
    const rec = new EventRecorder(c, "virt-controller", nullLogger);
    const cdi = rec.forComponent("datavolume-import-controller");
    const [vmi] = c.seed(resources.vmis, newVmi("v1"));
    cdi.event(vmi!, "Normal", "ImportScheduled", "Import into v1 scheduled");
    rec.event(vmi!, "Normal", "ImportScheduled", "Import into v1 scheduled");
    cdi.event(vmi!, "Normal", "ImportScheduled", "Import into v1 scheduled");
    await rec.flush(); // one queue: the parent's flush waits for its views' events too
    const evs = c.all<Event>(resources.events);
    const by = (comp: string) => evs.filter((e) => e.source?.component === comp);
    assert.equal(evs.length, 2, "a repeat aggregates only within its component");
    assert.equal(by("datavolume-import-controller")[0]?.count, 2);
    assert.equal(by("datavolume-import-controller")[0]?.reportingComponent, "datavolume-import-controller");
    assert.equal(by("virt-controller")[0]?.count, 1);
  });

  it("never throws and never blocks: a failing API is logged", async () => {
    const c = new FakeClient();
    c.prependReactor("*", "events", () => ({ error: new Error("down") }));
    const lines: string[] = [];
    const log = { ...nullLogger, warn: (m: string) => lines.push(m) };
    const rec = new EventRecorder(c, "virt-controller", log);
    rec.event(newVmi("v"), "Normal", "Started", "VMI started");
    await rec.flush();
    assert.deepEqual(lines, ["could not record event"]);
  });
});
