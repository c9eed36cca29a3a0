// Shapes the REST layer works with: any stored object has ObjectMeta; the rest is schema-checked elsewhere.
import type { UserInfo } from "../auth/identity.js";

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: unknown[];
  [k: string]: unknown;
}

export interface KObj {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export type Rec = Record<string, unknown>;

export function rec(v: unknown): Rec {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Rec) : {};
}

/** `a.b.c` lookup through plain objects. */
export function field(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const seg of path.split(".")) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = (cur as Rec)[seg];
  }
  return cur;
}

export function nowRfc3339(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export interface DeleteOptions {
  propagationPolicy?: "Background" | "Foreground" | "Orphan";
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
  orphanDependents?: boolean;
}

export interface WriteOptions {
  dryRun: boolean;
  fieldManager: string;
  /** the fieldManager query parameter was given (server-side apply requires it) */
  fieldManagerExplicit?: boolean;
  fieldValidation: "Strict" | "Warn" | "Ignore";
  force?: boolean;
  /** the authenticated caller (admission sees it as userInfo) */
  user: UserInfo;
}

export interface WriteResult {
  object: KObj;
  code: number;
  warnings: string[];
}
