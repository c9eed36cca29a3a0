// An event recorder: Kubernetes core/v1 Events with KubeVirt's reasons. A repeat of the same (object, type, reason,
// message) within the cache's life bumps `count` and `lastTimestamp` of the existing Event instead of creating one.
// Writes are queued and serialized; a failure is logged and never reaches the reconcile that recorded the event.
// forComponent() gives the same queue and cache under another `source.component` (kube's one broadcaster with a
// NewRecorder per controller): storage/ attributes its events as CDI's and Kubernetes' own controllers do.

import { type Client, type Event, type KObject, resources } from "../../client/index.js";
import { isNotFound } from "../../lib/errors.js";
import type { Logger } from "../../lib/log.js";

export type EventType = "Normal" | "Warning";

/** KubeVirt's reasons, as virt-controller and virt-handler record them. */
export const Reasons = {
  SuccessfulCreate: "SuccessfulCreate",
  FailedCreate: "FailedCreate",
  SuccessfulDelete: "SuccessfulDelete",
  FailedDelete: "FailedDelete",
  FailedScheduling: "FailedScheduling",
  Scheduled: "Scheduled",
  Started: "Started",
  ShuttingDown: "ShuttingDown",
  Stopped: "Stopped",
  FailedPodCIDRAllocation: "CIDRNotAvailable",
} as const;

export interface Recorder {
  event(obj: KObject, type: EventType, reason: string, message: string): void;
  /** The same recorder, its events attributed to `component` (their `source.component` and `reportingComponent`). */
  forComponent(component: string): Recorder;
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
}

const MAX_CACHE = 4096;

/** The write queue and the repeat cache, shared by every component view of one recorder. */
interface Shared {
  chain: Promise<void>;
  seen: Map<string, Seen>;
  seq: number;
}

export class EventRecorder implements Recorder {
  private shared: Shared = { chain: Promise.resolve(), seen: new Map(), seq: 0 };

  constructor(
    private readonly client: Client,
    private readonly component: string,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
    private readonly host = "",
  ) {}

  event(obj: KObject, type: EventType, reason: string, message: string): void {
    const ts = this.now()
      .toISOString()
      .replace(/\.\d+Z$/, "Z");
    // Only the reference is kept while the event waits its turn, never the whole object (a burst queues thousands).
    const ref = refOf(obj);
    this.shared.chain = this.shared.chain.then(() =>
      this.write(ref, type, reason, message, ts).catch((err) =>
        this.log.warn("could not record event", { err: String(err), reason, object: ref.name }),
      ),
    );
  }

  forComponent(component: string): EventRecorder {
    const view = new EventRecorder(this.client, component, this.log, this.now, this.host);
    view.shared = this.shared;
    return view;
  }

  /** Resolves once every queued event has been written (or given up on), whichever component recorded it. */
  flush(): Promise<void> {
    return this.shared.chain;
  }

  private async write(ref: ObjectRef, type: EventType, reason: string, message: string, ts: string): Promise<void> {
    const namespace = ref.namespace || "default";
    const key = [this.component, ref.uid, ref.namespace, ref.name, type, reason, message].join("\u0000");
    const { seen } = this.shared;
    const prev = seen.get(key);
    if (prev) {
      try {
        await this.client.patch<Event>(resources.events, prev.namespace, prev.name, "merge", {
          count: prev.count + 1,
          lastTimestamp: ts,
        });
        prev.count++;
        return;
      } catch (err) {
        if (!isNotFound(err)) throw err;
        seen.delete(key);
      }
    }
    const name = `${ref.name}.${(Date.now() * 1000 + (this.shared.seq++ % 1000)).toString(16)}`;
    const ev: Event = {
      metadata: { name, namespace },
      involvedObject: ref,
      reason,
      message,
      type,
      source: { component: this.component, ...(this.host ? { host: this.host } : {}) },
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
      reportingComponent: this.component,
      reportingInstance: this.host || this.component,
    };
    await this.client.create(resources.events, namespace, ev);
    if (seen.size >= MAX_CACHE) {
      const oldest = seen.keys().next().value;
      if (oldest !== undefined) seen.delete(oldest);
    }
    seen.set(key, { name, namespace, count: 1 });
  }
}

type ObjectRef = Event["involvedObject"];

function refOf(obj: KObject): ObjectRef {
  return {
    ...(obj.apiVersion ? { apiVersion: obj.apiVersion } : {}),
    ...(obj.kind ? { kind: obj.kind } : {}),
    ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
    ...(obj.metadata.name ? { name: obj.metadata.name } : {}),
    ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
    ...(obj.metadata.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
  };
}

/** Records nothing; for tests that do not look at events. */
export const nullRecorder: Recorder = { event: () => {}, forComponent: () => nullRecorder };
