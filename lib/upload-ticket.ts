// One-time upload tickets: the API server's upload proxy (apiserver/upload/proxy.ts) checks the user's upload token,
// then mints a ticket, records only its SHA-256 and expiry on the upload pod (annotation), and sends the client (a
// 307) or its own relay to the node agent's /upload/{ns}/{pod}?ticket=…. The agent (handler/server.ts) accepts the
// upload only with a ticket that matches that record (constant-time), has not expired, and that it consumes by
// removing the record with a resourceVersion precondition (so two uses, even across an agent restart, cannot both
// win). A client that did not pass the API server's token check has no ticket and cannot upload.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const UPLOAD_TICKET_ANNOTATION = "upload.tsvirt.io/ticket";
/** Long enough for a client to follow a redirect; a ticket is used within milliseconds. */
export const UPLOAD_TICKET_TTL_SECONDS = 60;
/** The query parameter of the agent's upload path that carries the ticket. */
export const UPLOAD_TICKET_PARAM = "ticket";

const TICKET = /^[A-Za-z0-9_-]{43}$/;
const RECORD = /^([0-9a-f]{64})\.([0-9]{1,12})$/;

function digest(ticket: string): Buffer {
  return createHash("sha256").update(ticket).digest();
}

/** A fresh ticket (256 random bits) and the record that goes on the upload pod: `<sha256 hex>.<expiry, unix s>`. */
export function mintUploadTicket(
  nowMs: number = Date.now(),
  ttlSeconds = UPLOAD_TICKET_TTL_SECONDS,
): { ticket: string; record: string } {
  const ticket = randomBytes(32).toString("base64url");
  return { ticket, record: `${digest(ticket).toString("hex")}.${Math.floor(nowMs / 1000) + ttlSeconds}` };
}

/** Pure: undefined when `ticket` matches `record` and has not expired, else why not. */
export function checkUploadTicket(
  record: string | undefined,
  ticket: string | undefined | null,
  nowMs: number = Date.now(),
): string | undefined {
  if (!ticket) return "an upload needs the ticket the API server's upload proxy issued (?ticket=)";
  if (!TICKET.test(ticket)) return "malformed upload ticket";
  const m = record ? RECORD.exec(record) : null;
  if (!m) return "no upload ticket is open for this pod: start the upload at the API server's upload proxy";
  const want = Buffer.from(m[1] ?? "", "hex");
  if (!timingSafeEqual(digest(ticket), want)) return "the upload ticket does not match";
  if (Number(m[2]) * 1000 <= nowMs) return "the upload ticket expired";
  return undefined;
}
