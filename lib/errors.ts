// Kubernetes Status errors: every failure a client sees is one of these, with a reason and field causes.

export interface StatusCause {
  type?: string;
  field?: string;
  message?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, unknown>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

export class StatusError extends Error {
  readonly status: Status;
  constructor(status: Status) {
    super(status.message);
    this.name = "StatusError";
    this.status = status;
  }
  get code(): number {
    return this.status.code;
  }
  get reason(): string {
    return this.status.reason;
  }
}

export interface GroupResource {
  group: string;
  resource: string;
}

function qualified(gr: GroupResource): string {
  return gr.group ? `${gr.resource}.${gr.group}` : gr.resource;
}

export function statusError(code: number, reason: string, message: string, details?: StatusDetails): StatusError {
  const status: Status = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
  if (details) status.details = details;
  return new StatusError(status);
}

export function notFound(gr: GroupResource, name: string): StatusError {
  return statusError(404, "NotFound", `${qualified(gr)} "${name}" not found`, {
    name,
    group: gr.group,
    kind: gr.resource,
  });
}

export function alreadyExists(gr: GroupResource, name: string): StatusError {
  return statusError(409, "AlreadyExists", `${qualified(gr)} "${name}" already exists`, {
    name,
    group: gr.group,
    kind: gr.resource,
  });
}

export function conflict(gr: GroupResource, name: string, why: string): StatusError {
  return statusError(409, "Conflict", `Operation cannot be fulfilled on ${qualified(gr)} "${name}": ${why}`, {
    name,
    group: gr.group,
    kind: gr.resource,
  });
}

export function invalid(kind: { group: string; kind: string }, name: string, causes: StatusCause[]): StatusError {
  const summary = causes
    .map((c) => (c.field ? `${c.field}: ${c.message ?? c.type ?? ""}` : (c.message ?? "")))
    .join(", ");
  return statusError(422, "Invalid", `${kind.kind} "${name}" is invalid: ${summary}`, {
    name,
    group: kind.group,
    kind: kind.kind,
    causes,
  });
}

export function badRequest(message: string, causes?: StatusCause[]): StatusError {
  return statusError(400, "BadRequest", message, causes ? { causes } : undefined);
}

export function expired(message: string): StatusError {
  return statusError(410, "Expired", message);
}

export function unsupportedMediaType(message: string): StatusError {
  return statusError(415, "UnsupportedMediaType", message);
}

export function methodNotAllowed(message: string): StatusError {
  return statusError(405, "MethodNotAllowed", message);
}

export function forbidden(message: string): StatusError {
  return statusError(403, "Forbidden", message);
}

export function unauthorized(message = "Unauthorized"): StatusError {
  return statusError(401, "Unauthorized", message);
}

export function tooLarge(message: string): StatusError {
  return statusError(413, "RequestEntityTooLarge", message);
}

export function internalError(message: string): StatusError {
  return statusError(500, "InternalError", `Internal error occurred: ${message}`);
}

export function isStatusError(e: unknown): e is StatusError {
  return e instanceof StatusError;
}

export function isNotFound(e: unknown): boolean {
  return e instanceof StatusError && e.code === 404;
}

export function isConflict(e: unknown): boolean {
  return e instanceof StatusError && e.code === 409 && e.reason === "Conflict";
}

export function isAlreadyExists(e: unknown): boolean {
  return e instanceof StatusError && e.reason === "AlreadyExists";
}

/** Converts a JSON pointer (`/spec/domain/devices/disks/0/name`) to a field path (`spec.domain.devices.disks[0].name`). */
export function pointerToField(pointer: string): string {
  let out = "";
  for (const raw of pointer.split("/").slice(1)) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}
