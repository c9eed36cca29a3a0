// The base64 envelope an AdmissionReview response carries its JSON patch in; applying it is lib/jsonpatch.ts's job.
import type { JsonPatchOperation } from "../../lib/jsonpatch.js";

export type PatchOp = JsonPatchOperation;

export function encodePatch(patch: readonly PatchOp[]): string {
  return Buffer.from(JSON.stringify(patch)).toString("base64");
}

export function decodePatch(b64: string): PatchOp[] {
  return JSON.parse(Buffer.from(b64, "base64").toString("utf8")) as PatchOp[];
}
