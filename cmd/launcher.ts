// `tsvirt launcher --uid UID --pod-dir DIR`: one virt-launcher. Started by the node agent inside a launcher pod
// (launcher/pod.ts); started by hand outside one, it wraps itself in a pod and waits for it.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";

interface Opts {
  uid: string;
  podDir: string;
  nodeDir: string;
  socket?: string;
  lockDir?: string;
  accel?: string;
}

export function registerLauncher(program: Command): void {
  program
    .command("launcher")
    .description("run one virt-launcher (private libvirtd + QEMU) for a VMI")
    .requiredOption("--uid <uid>", "the VMI's metadata.uid")
    .requiredOption("--pod-dir <dir>", "the pod's private directory (keep it short: sockets live under it)")
    .option(
      "--node-dir <dir>",
      "node data directory (golden QEMU capability cache, command sockets)",
      "/var/lib/tsvirt",
    )
    .option("--socket <path>", "command socket to listen on (default: <node dir>/sockets/<uid>_sock)")
    .option("--lock-dir <dir>", "per-VMI lock files (outside a pod only)", "/run/tsvirt/launcher-locks")
    .option("--accel <mode>", "auto | kvm | tcg", process.env.TSVIRT_ACCEL ?? "auto")
    .action(async (o: Opts) => {
      if (process.env.TSVIRT_LAUNCHER_POD === "1" && process.ppid === 1) {
        const { commandSocketPath, runLauncher } = await import("../launcher/index.js");
        await runLauncher({
          uid: o.uid,
          podDir: o.podDir,
          commandSocket: o.socket ?? commandSocketPath(o.nodeDir, o.uid),
          nodeDir: o.nodeDir,
          ...(o.accel ? { accel: o.accel } : {}),
        });
        return;
      }
      const { podCommand } = await import("../launcher/index.js");
      const cmd = podCommand({
        uid: o.uid,
        podDir: path.resolve(o.podDir),
        lockDir: o.lockDir ?? "/run/tsvirt/launcher-locks",
        nodeDir: o.nodeDir,
        ...(o.accel ? { accel: o.accel } : {}),
        tsvirtJs: fileURLToPath(new URL("./tsvirt.js", import.meta.url)),
      });
      const { mkdirSync } = await import("node:fs");
      mkdirSync(o.lockDir ?? "/run/tsvirt/launcher-locks", { recursive: true });
      const child = spawn(cmd.command, cmd.args, { stdio: "inherit", env: cmd.env });
      for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => child.kill(sig));
      child.on("exit", (code, sig) => process.exit(code ?? (sig ? 128 : 1)));
    });
}
