// Test helpers: a worker pod's status as the node agent reports it.
import type { Pod } from "../../client/index.js";
import { formatOutcome, type WorkerOutcome } from "./pods.js";

/** The status of a worker pod in `phase`; an ended one exits 0 (Succeeded) or 137 (killed, no outcome) or 1. */
export function workerStatus(
  phase: "Pending" | "Running" | "Succeeded" | "Failed",
  out?: WorkerOutcome,
): Pod["status"] {
  if (phase !== "Succeeded" && phase !== "Failed") return { phase };
  const exitCode = phase === "Succeeded" ? 0 : out ? 1 : 137;
  return {
    phase,
    containerStatuses: [
      {
        name: "worker",
        ready: false,
        restartCount: 0,
        image: "",
        imageID: "",
        state: {
          terminated: {
            exitCode,
            reason: exitCode === 0 ? "Completed" : "Error",
            ...(out ? { message: formatOutcome(out) } : {}),
          },
        },
      },
    ],
  };
}
