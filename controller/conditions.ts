// Condition helpers with metav1's semantics live in api/ (one implementation for every component).
import { nowRfc3339 } from "../api/index.js";

export { getCondition, removeCondition, setCondition } from "../api/index.js";

/** RFC 3339 with second precision, as Kubernetes timestamps are serialized. */
export function timestamp(d: Date): string {
  return nowRfc3339(d.getTime());
}
