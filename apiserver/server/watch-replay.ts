// What a watch with a label or field selector sends, Kubernetes' semantics: an object that comes to match arrives as
// ADDED, one that stops matching as DELETED (with its new state), a change within the selection as MODIFIED. Live
// events carry their previous state; a watch resuming from a resourceVersion replays the log, whose events do not,
// so each object's state at that revision is looked up once (store.statesAt) and followed through the replay.
import { selectionEvent } from "../../lib/selectors.js";
import type { EventType } from "../storage/store.js";

export interface LoggedEvent<O> {
  type: EventType;
  namespace: string;
  name: string;
  object: O;
}

/**
 * The events a selective watch resuming at some revision sends, from the log's events after it (in order).
 * `statesAt` answers, for objects that existed at that revision, their last logged event at or before it.
 * "expired" when the log no longer tells such a state (compacted): the client cannot be told what it holds and must
 * relist (410), as a too-old resourceVersion.
 */
export function replaySelected<O>(
  events: readonly LoggedEvent<O>[],
  match: (o: O) => boolean,
  statesAt: (keys: string[]) => Map<string, { type: EventType; object: O }>,
): { type: EventType; object: O }[] | "expired" {
  const keyOf = (e: LoggedEvent<O>): string => `${e.namespace}/${e.name}`;
  // Objects whose first event in the log is not their creation existed at the start: their state there is needed.
  const first = new Map<string, EventType>();
  for (const e of events) if (!first.has(keyOf(e))) first.set(keyOf(e), e.type);
  const existed = [...first].filter(([, t]) => t !== "ADDED").map(([k]) => k);
  const states = existed.length > 0 ? statesAt(existed) : new Map<string, { type: EventType; object: O }>();
  /** Whether the client holds the object (it matched at the start, or at its last change sent). */
  const held = new Map<string, boolean>();
  for (const k of existed) {
    const s = states.get(k);
    if (!s) return "expired";
    held.set(k, s.type !== "DELETED" && match(s.object));
  }
  const out: { type: EventType; object: O }[] = [];
  for (const e of events) {
    const k = keyOf(e);
    const now = e.type !== "DELETED" && match(e.object);
    const type = selectionEvent(e.type, held.get(k) ?? false, now);
    if (type) out.push({ type, object: e.object });
    held.set(k, now);
  }
  return out;
}
