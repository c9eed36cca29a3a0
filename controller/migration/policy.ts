// MigrationPolicy matching and the effective migration settings (KubeVirt's migrationpolicy.go MatchPolicy and
// GetMigrationConfigurationByPolicy). Pure.
import type { MigrationConfiguration, MigrationConfigurationOptions } from "../../api/index.js";
import type { MigrationPolicy } from "../../client/index.js";

/** Whether every selector pair matches, and how many VMI / namespace labels did. */
function matchCount(
  p: MigrationPolicy,
  vmiLabels: Record<string, string>,
  nsLabels: Record<string, string>,
): { vmi: number; ns: number } | undefined {
  const sel = p.spec.selectors;
  if (!sel) return undefined;
  const count = (want: Record<string, string> | undefined, have: Record<string, string>) => {
    let n = 0;
    for (const [k, v] of Object.entries(want ?? {})) {
      if (have[k] !== v) return -1;
      n++;
    }
    return n;
  };
  const vmi = count(sel.virtualMachineInstanceSelector, vmiLabels);
  const ns = vmi < 0 ? -1 : count(sel.namespaceSelector, nsLabels);
  return vmi < 0 || ns < 0 ? undefined : { vmi, ns };
}

/**
 * The policy for a VMI: among the policies whose selectors all match (VMI labels, its namespace's labels), the one
 * with the most matched labels; ties go to more matched VMI labels, then to the smallest name.
 */
export function matchPolicy(
  policies: readonly MigrationPolicy[],
  vmiLabels: Record<string, string> | undefined,
  nsLabels: Record<string, string> | undefined,
): MigrationPolicy | undefined {
  let best: { p: MigrationPolicy; total: number; vmi: number } | undefined;
  for (const p of policies) {
    const m = matchCount(p, vmiLabels ?? {}, nsLabels ?? {});
    if (!m) continue;
    const total = m.vmi + m.ns;
    const name = p.metadata.name ?? "";
    if (
      !best ||
      total > best.total ||
      (total === best.total && (m.vmi > best.vmi || (m.vmi === best.vmi && name < (best.p.metadata.name ?? ""))))
    )
      best = { p, total, vmi: m.vmi };
  }
  return best?.p;
}

/** The cluster's migration settings with the policy's set fields over them (what the VMI's migrationState records). */
export function effectiveMigrationConfiguration(
  cluster: MigrationConfiguration,
  policy: MigrationPolicy | undefined,
): MigrationConfigurationOptions {
  const out: MigrationConfigurationOptions = { ...structuredClone(cluster) };
  const s = policy?.spec;
  if (!s) return out;
  if (s.allowAutoConverge !== undefined) out.allowAutoConverge = s.allowAutoConverge;
  if (s.bandwidthPerMigration !== undefined) out.bandwidthPerMigration = s.bandwidthPerMigration;
  if (s.completionTimeoutPerGiB !== undefined) out.completionTimeoutPerGiB = s.completionTimeoutPerGiB;
  if (s.allowPostCopy !== undefined) out.allowPostCopy = s.allowPostCopy;
  if (s.allowWorkloadDisruption !== undefined) out.allowWorkloadDisruption = s.allowWorkloadDisruption;
  else if (s.allowPostCopy !== undefined) out.allowWorkloadDisruption = s.allowPostCopy;
  if (s.maxDowntimeMs !== undefined) out.maxDowntimeMs = s.maxDowntimeMs;
  if (s.experimental !== undefined) out.experimental = structuredClone(s.experimental);
  return out;
}
