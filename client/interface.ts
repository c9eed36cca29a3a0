// The one client interface every component codes against; RestClient speaks HTTP, FakeClient serves unit tests.

import type { ResourceRef } from "./resources.js";
import type { KList, KObject, WatchEvent } from "./types.js";

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface WatchOptions {
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
}

export interface WriteOptions {
  dryRun?: boolean;
  fieldManager?: string;
  fieldValidation?: "Strict" | "Warn" | "Ignore";
}

export type PatchType = "merge" | "json" | "apply" | "strategic";

export interface PatchOptions extends WriteOptions {
  force?: boolean;
  subresource?: string;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: "Background" | "Foreground" | "Orphan";
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

export type { JsonPatchOperation as JsonPatchOp } from "../lib/jsonpatch.js";

/** A running watch: `done` settles when the stream ends (resolves) or fails (rejects); `stop()` ends it. */
export interface WatchHandle {
  stop(): void;
  done: Promise<void>;
}

export type WatchHandler<T> = (ev: WatchEvent<T>) => void;

export interface Client {
  get<T extends KObject>(ref: ResourceRef, namespace: string | undefined, name: string): Promise<T>;
  list<T extends KObject>(ref: ResourceRef, namespace: string | undefined, opts?: ListOptions): Promise<KList<T>>;
  create<T extends KObject>(ref: ResourceRef, namespace: string | undefined, obj: T, opts?: WriteOptions): Promise<T>;
  update<T extends KObject>(ref: ResourceRef, obj: T, opts?: WriteOptions): Promise<T>;
  /** PUT the status subresource. */
  updateStatus<T extends KObject>(ref: ResourceRef, obj: T, opts?: WriteOptions): Promise<T>;
  patch<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    opts?: PatchOptions,
  ): Promise<T>;
  delete(ref: ResourceRef, namespace: string | undefined, name: string, opts?: DeleteOptions): Promise<void>;
  watch<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    opts: WatchOptions,
    onEvent: WatchHandler<T>,
  ): WatchHandle;
  /** POST to an object's subresource (pods/binding, ...). */
  createSubresource<T>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<T>;
  /** GET a non-resource path (/version, /apis/subresources.kubevirt.io/v1/version ...). */
  getPath<T>(path: string): Promise<T>;
  /** PUT to an aggregated subresource (subresources.kubevirt.io: start, stop, pause ...); resolves on 2xx. */
  putSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<void>;
}
