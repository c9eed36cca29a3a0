// What the REST layer takes from a request (query parameters, DeleteOptions) and hands back from a write.
import type { UnstructuredObject as KObj } from "../../api/index.js";
import type { UserInfo } from "../auth/identity.js";

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
