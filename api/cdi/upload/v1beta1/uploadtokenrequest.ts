// upload.cdi.kubevirt.io/v1beta1 UploadTokenRequest (containerized-data-importer-api upload/v1beta1 types.go): asks
// for a short-lived token that lets its bearer upload one image into a DataVolume's claim. Never stored.
import type { Static } from "@sinclair/typebox";
import { TypeMeta } from "../../../meta/v1/object-meta.js";
import { Str, Struct } from "../../../meta/v1/schema.js";

export const UPLOAD_GROUP = "upload.cdi.kubevirt.io";

export const UploadTokenRequest = Struct(
  {
    ...TypeMeta,
    spec: Struct({ pvcName: Str }, ["pvcName"]),
    status: Struct({ token: Str }),
  },
  ["spec"],
);
export type UploadTokenRequest = Static<typeof UploadTokenRequest>;
