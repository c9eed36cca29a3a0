// Test helpers for the node agent's unit tests: an in-memory API fake that records writes.
import { statusError } from "../lib/errors.js";
import type { ApiClient, KObject, Pod, ResourceRef } from "./ports.js";

/** A launcher pod's status once its launcher ended, with its termination message, as a kubelet reports it. */
export function endedStatus(exitCode: number, message: string): NonNullable<Pod["status"]> {
  return {
    phase: exitCode === 0 ? "Succeeded" : "Failed",
    containerStatuses: [
      {
        name: "compute",
        image: "x",
        imageID: "",
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", message } },
      },
    ],
  };
}

export interface Write {
  verb: "create" | "update" | "updateStatus" | "delete";
  resource: string;
  name: string;
  obj?: KObject;
  opts?: unknown;
}

export class FakeApi implements ApiClient {
  readonly objects = new Map<string, KObject>();
  readonly writes: Write[] = [];
  private rv = 1;
  onChange: (resource: string, obj: KObject, deleted: boolean) => void = () => {};

  private key(ref: ResourceRef, ns: string | undefined, name: string): string {
    return `${ref.resource}/${ref.namespaced ? (ns ?? "") : ""}/${name}`;
  }

  put<T extends KObject>(ref: ResourceRef, obj: T): T {
    const o = structuredClone(obj);
    o.metadata.resourceVersion = String(++this.rv);
    this.objects.set(this.key(ref, o.metadata.namespace, o.metadata.name ?? ""), o);
    this.onChange(ref.resource, o, false);
    return structuredClone(o);
  }

  peek<T extends KObject>(ref: ResourceRef, ns: string | undefined, name: string): T | undefined {
    const o = this.objects.get(this.key(ref, ns, name));
    return o ? (structuredClone(o) as T) : undefined;
  }

  async get<T extends KObject>(ref: ResourceRef, ns: string | undefined, name: string): Promise<T> {
    const o = this.peek<T>(ref, ns, name);
    if (!o) throw statusError(404, "NotFound", `${ref.resource} "${name}" not found`);
    return o;
  }

  async create<T extends KObject>(ref: ResourceRef, ns: string | undefined, obj: T): Promise<T> {
    const name = obj.metadata.name ?? "";
    if (this.peek(ref, ns, name)) throw statusError(409, "AlreadyExists", `${ref.resource} "${name}" already exists`);
    this.writes.push({ verb: "create", resource: ref.resource, name, obj });
    const o = structuredClone(obj);
    if (ns !== undefined) o.metadata.namespace = ns;
    o.metadata.uid ??= crypto.randomUUID();
    return this.put(ref, o);
  }

  private async replace<T extends KObject>(verb: "update" | "updateStatus", ref: ResourceRef, obj: T): Promise<T> {
    const name = obj.metadata.name ?? "";
    const cur = this.peek(ref, obj.metadata.namespace, name);
    if (!cur) throw statusError(404, "NotFound", `${ref.resource} "${name}" not found`);
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== cur.metadata.resourceVersion) {
      throw statusError(409, "Conflict", `the object has been modified`);
    }
    this.writes.push({ verb, resource: ref.resource, name, obj: structuredClone(obj) });
    return this.put(ref, obj);
  }

  update<T extends KObject>(ref: ResourceRef, obj: T): Promise<T> {
    return this.replace("update", ref, obj);
  }

  updateStatus<T extends KObject>(ref: ResourceRef, obj: T): Promise<T> {
    return this.replace("updateStatus", ref, obj);
  }

  async delete(ref: ResourceRef, ns: string | undefined, name: string, opts?: unknown): Promise<void> {
    const k = this.key(ref, ns, name);
    const cur = this.objects.get(k);
    if (!cur) throw statusError(404, "NotFound", `${ref.resource} "${name}" not found`);
    this.writes.push({ verb: "delete", resource: ref.resource, name, opts });
    this.objects.delete(k);
    this.onChange(ref.resource, cur, true);
  }
}
