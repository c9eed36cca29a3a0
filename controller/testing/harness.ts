// A controller under test: FakeClient + VirtController with informers running and workers NOT running; tests step
// the queues item by item (as KubeVirt's tests call Execute()).

import { type Client, FakeClient, type KObject, type ResourceRef } from "../../client/index.js";
import { nullLogger } from "../../lib/log.js";
import { VirtController } from "../app.js";
import { EventRecorder } from "../events/index.js";

export interface Harness {
  client: FakeClient;
  ctrl: VirtController;
  recorder: EventRecorder;
  /** Steps every queue until all are empty (delayed items stay delayed); returns the number of steps. */
  drain(max?: number): Promise<number>;
  /** Reasons of the Events recorded so far. */
  eventReasons(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  /** The test plays the DataVolume controller (sets DV phases by hand): its queue is emptied unprocessed. */
  playDataVolumes?: boolean;
}

export async function startHarness(
  seed: { ref: ResourceRef; objs: KObject[] }[] = [],
  wrap?: (c: FakeClient) => Client,
  opts: HarnessOptions = {},
): Promise<Harness> {
  const client = new FakeClient();
  // virt-api's VMI mutating webhook: the finalizer and phase Pending on creation.
  client.prependReactor("create", "virtualmachineinstances", (a) => {
    const o = a.object as KObject & { status?: { phase?: string } };
    o.metadata.finalizers = [...new Set([...(o.metadata.finalizers ?? []), "foregroundDeleteVirtualMachine"])];
    o.status = { ...(o.status ?? {}), phase: o.status?.phase || "Pending" };
    return undefined;
  });
  for (const s of seed) client.seed(s.ref, ...s.objs);
  const api = wrap ? wrap(client) : client;
  const recorder = new EventRecorder(api, "virt-controller", nullLogger);
  const ctrl = new VirtController({ client: api, log: nullLogger, recorder });
  ctrl.startInformers();
  await ctrl.waitForSync();
  for (let i = 0; i < 100 && client.watcherCount() < 10; i++) await new Promise((r) => setImmediate(r));
  const drain = async (max = 200): Promise<number> => {
    let steps = 0;
    for (; steps < max; steps++) {
      if (ctrl.vmQueue.len() > 0) await ctrl.stepVm();
      else if (ctrl.vmiQueue.len() > 0) await ctrl.stepVmi();
      else if (ctrl.podQueue.len() > 0) await ctrl.stepScheduler();
      else if (ctrl.nodeQueue.len() > 0) await ctrl.stepNode();
      else if (ctrl.rsQueue.len() > 0) await ctrl.stepReplicaSet();
      else if (ctrl.evacuationQueue.len() > 0) await ctrl.stepEvacuation();
      else if (ctrl.migrationQueue.len() > 0) await ctrl.stepMigration();
      else if (ctrl.coldQueue.len() > 0) await ctrl.stepCold();
      else if (ctrl.storage.claimQueue.len() > 0) await ctrl.storage.stepClaim();
      else if (ctrl.storage.volumeQueue.len() > 0) await ctrl.storage.stepVolume();
      else if (ctrl.storage.capacityQueue.len() > 0) await ctrl.storage.stepCapacity();
      else if (ctrl.dataVolumes.queue.len() > 0) {
        if (opts.playDataVolumes) {
          const k = await ctrl.dataVolumes.queue.get();
          if (k !== undefined) ctrl.dataVolumes.queue.done(k);
        } else await ctrl.dataVolumes.step();
      } else break;
    }
    if (steps >= max) throw new Error("queues did not drain");
    return steps;
  };
  return {
    client,
    ctrl,
    recorder,
    drain,
    eventReasons: async () => {
      await recorder.flush();
      return client
        .all<{ reason?: string } & KObject>({
          group: "",
          version: "v1",
          resource: "events",
          namespaced: true,
          kind: "Event",
        })
        .map((e) => e.reason ?? "");
    },
    stop: () => ctrl.stop(),
  };
}
