// Decodes a `application/vnd.kubernetes.protobuf` request body: the 4-byte magic `k8s\0`, then a runtime.Unknown
// envelope (typeMeta 1 {apiVersion 1, kind 2}, raw 2, contentEncoding 3, contentType 4) whose raw bytes are the
// object's message. Kinds not listed in `protobufMessages` are a 415, malformed bodies a 400.

import { badRequest, unsupportedMediaType } from "../../lib/errors.js";
import { decodeMessage, protobufMessages } from "./messages.js";
import { readMessage, WireError } from "./wire.js";

export const protobufContentType = "application/vnd.kubernetes.protobuf";
const magic = [0x6b, 0x38, 0x73, 0x00];

export interface DecodedObject {
  apiVersion: string;
  kind: string;
  /** The object in its JSON shape, with apiVersion and kind set. */
  object: Record<string, unknown>;
}

/** True for `application/vnd.kubernetes.protobuf` (with or without parameters). */
export function isProtobufContentType(contentType: string | undefined): boolean {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase() === protobufContentType;
}

function text(v: { wire: number; value: unknown } | undefined): string {
  if (!v) return "";
  if (v.wire !== 2) throw new WireError("expected a string");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(v.value as Uint8Array);
  } catch {
    throw new WireError("invalid UTF-8 in the type meta");
  }
}

export function decodeProtobuf(body: Uint8Array): DecodedObject {
  if (body.length < 4 || magic.some((b, i) => body[i] !== b)) {
    throw badRequest("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]");
  }
  try {
    const unknown = readMessage(body.subarray(4));
    const typeMeta = unknown.get(1)?.at(-1);
    const tm = typeMeta?.wire === 2 ? readMessage(typeMeta.value) : new Map();
    const apiVersion = text(tm.get(1)?.at(-1));
    const kind = text(tm.get(2)?.at(-1));
    const rawField = unknown.get(2)?.at(-1);
    const raw = rawField?.wire === 2 ? rawField.value : new Uint8Array();
    const contentEncoding = text(unknown.get(3)?.at(-1));
    if (contentEncoding)
      throw unsupportedMediaType(`unsupported protobuf content encoding ${JSON.stringify(contentEncoding)}`);
    const spec = protobufMessages[`${apiVersion}/${kind}`];
    if (!spec) {
      throw unsupportedMediaType(
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (protobuf is accepted for ${Object.keys(protobufMessages).join(", ")}; got ${apiVersion || "<none>"}, Kind=${kind || "<none>"})`,
      );
    }
    const object: Record<string, unknown> = { apiVersion, kind, ...decodeMessage(raw, spec) };
    if (!object.metadata) object.metadata = {};
    return { apiVersion, kind, object };
  } catch (e) {
    if (e instanceof WireError || e instanceof RangeError)
      throw badRequest(`unable to decode protobuf body: ${e.message}`);
    throw e;
  }
}
