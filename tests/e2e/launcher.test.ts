// virt-launcher end to end: real launcher pods (compiled JavaScript), each with its own libvirtd and QEMU (TCG
// here, KVM where usable), driven only through the launcher's command and console sockets.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { phaseFor } from "../../handler/phase.js";
import { podCommand, terminatePod } from "../../launcher/index.js";
import { ensureGuest, GUEST_CMDLINE, type Guest, HEARTBEAT, POWEROFF_MARKER } from "../guest/index.js";
import { GUEST, LIBVIRT, requirePrereqs } from "../lib/prereqs.js";
import {
  alive,
  baseDir,
  Console,
  launcherPid,
  nextState,
  type Pod,
  podProcesses,
  startPod,
  tsvirtJs,
  vmiFor,
  waitFor,
} from "./launcher-lib.js";

requirePrereqs(...LIBVIRT, ...GUEST);

const BOOT_MS = 180_000; // TCG on a loaded 2-core machine
describe("virt-launcher (real libvirt + QEMU)", () => {
  let guest: Guest;
  const nodeDir = path.join(baseDir, `node-${process.pid}`);
  const pods: Pod[] = [];

  before(async () => {
    guest = await ensureGuest();
  });
  after(async () => {
    for (const p of pods) {
      p.client.close();
      p.kill();
    }
    for (const p of pods) {
      await waitFor("the pod to end", () => !alive(p.pid) || undefined, 10_000).catch(() => {});
      await rm(p.paths.podDir, { recursive: true, force: true });
    }
    await rm(nodeDir, { recursive: true, force: true });
  });

  function kernelBootVmi(pod: Pod, name: string, extraArgs = ""): [Record<string, unknown>, Record<string, unknown>] {
    const vmi = vmiFor(pod.uid, name, {
      domain: {
        resources: { requests: { memory: "256Mi" } },
        firmware: {
          kernelBoot: {
            container: { image: "guest-kernel" },
            kernelArgs: `${GUEST_CMDLINE} ip=off ${extraArgs}`.trim(),
          },
        },
        devices: {},
      },
    });
    return [vmi, { kernelBoot: { kernel: guest.vmlinux, initrd: guest.initrd } }];
  }

  it("boots, answers on the console, stays silent while paused, powers off gracefully, ends on SIGTERM", async () => {
    const pod = await startPod(nodeDir);
    pods.push(pod);
    const [vmi, prepared] = kernelBootVmi(pod, "heartbeat", "tsvirt.heartbeat=1");
    const synced = await pod.client.call("Sync", { vmi, prepared });
    assert.deepEqual(synced.status, { state: "Running", reason: "Booted" });
    assert.equal(phaseFor({ domain: synced.status, current: "Scheduled", acpi: synced.acpi }), "Running");

    const con = await Console.connect(pod.paths.consoleSocket);
    try {
      await con.waitFor(new RegExp(guest.marker), BOOT_MS);
      const mark = con.text.length;
      con.send("echo round-$((40+2))-trip\n");
      await con.waitFor(/round-42-trip/, 30_000, mark);

      // Heartbeat on: after Pause returns, from +300 ms until Unpause, not one byte.
      await con.waitFor(new RegExp(`${HEARTBEAT} \\d+`), 30_000);
      const paused = await pod.client.call("Pause");
      const pausedAt = performance.now();
      assert.deepEqual(paused.status, { state: "Paused", reason: "User" });
      assert.equal(phaseFor({ domain: paused.status, current: "Running", acpi: true }), "Running");
      await new Promise((r) => setTimeout(r, 1500)); // the observation window
      const unpausedAt = performance.now(); // the window ends when Unpause is sent: output may precede its answer
      const unpaused = await pod.client.call("Unpause");
      assert.deepEqual(unpaused.status, { state: "Running", reason: "Unpaused" });
      const late = con.chunks.filter((c) => c.at >= pausedAt - 1000 && c.at < unpausedAt + 200);
      assert.equal(
        con.bytesBetween(pausedAt + 300, unpausedAt),
        "",
        `console bytes while paused: ${JSON.stringify(late.map((c) => [Math.round(c.at - pausedAt), c.data]))}`,
      );
      const after = con.text.length;
      await con.waitFor(new RegExp(`${HEARTBEAT} \\d+`), 30_000, after);

      // Graceful shutdown: ACPI power button, the guest powers itself off.
      const off = nextState(pod.client, (d) => d.status?.state === "Shutoff", 60_000);
      await pod.client.call("Shutdown", { gracePeriodSeconds: 60 });
      const final = await off;
      assert.deepEqual(final.status, { state: "Shutoff", reason: "Shutdown" });
      assert.equal(phaseFor({ domain: final.status, current: "Running", acpi: final.acpi }), "Succeeded");
      assert.match(con.text, new RegExp(POWEROFF_MARKER));
    } finally {
      con.close();
    }

    // SIGTERM to the pod: the launcher stops its daemon and exits; the pod is gone.
    assert.ok(terminatePod(pod.pid));
    await waitFor("the pod to exit", () => !alive(pod.pid) || undefined, 30_000);
  });

  it("boots a containerDisk overlay beside a kernelBoot VMI, each with its own daemon; QEMU killed and a guest panic are Failed", async () => {
    const [a, b] = await Promise.all([startPod(nodeDir), startPod(nodeDir)]);
    pods.push(a, b);
    const diskVmi = vmiFor(a.uid, "containerdisk", {
      domain: {
        resources: { requests: { memory: "256Mi" } },
        devices: { disks: [{ name: "containerdisk", disk: { bus: "virtio" } }] },
      },
      volumes: [{ name: "containerdisk", containerDisk: { image: "registry.local/guest:latest" } }],
    });
    const [kbVmi, kbPrepared] = kernelBootVmi(b, "kernelboot");
    const [ra, rb] = await Promise.all([
      a.client.call("Sync", { vmi: diskVmi, prepared: { baseImages: { containerdisk: guest.qcow2 } } }),
      b.client.call("Sync", { vmi: kbVmi, prepared: kbPrepared }),
    ]);
    assert.equal(ra.status?.state, "Running");
    assert.equal(rb.status?.state, "Running");
    const [ca, cb] = await Promise.all([
      Console.connect(a.paths.consoleSocket),
      Console.connect(b.paths.consoleSocket),
    ]);
    try {
      await Promise.all([
        ca.waitFor(new RegExp(`${guest.marker}.*vda`), BOOT_MS),
        cb.waitFor(new RegExp(guest.marker), BOOT_MS),
      ]);

      // Two pods, two daemons, two QEMUs: nothing shared.
      const pa = podProcesses(a.pid);
      const pb = podProcesses(b.pid);
      assert.equal(pa.libvirtd?.length, 1, JSON.stringify(pa));
      assert.equal(pb.libvirtd?.length, 1, JSON.stringify(pb));
      assert.notEqual(pa.libvirtd?.[0], pb.libvirtd?.[0]);
      const qa = pa["qemu-system-x86"]?.[0];
      assert.ok(qa, `QEMU of pod A: ${JSON.stringify(pa)}`);
      assert.ok(pb["qemu-system-x86"]?.[0]);

      // QEMU killed under the launcher: libvirt says Shutoff (Crashed) → Failed.
      const crashed = nextState(a.client, (d) => d.status?.state === "Shutoff", 60_000);
      process.kill(qa, "SIGKILL");
      const fa = await crashed;
      assert.deepEqual(fa.status, { state: "Shutoff", reason: "Crashed" });
      assert.equal(phaseFor({ domain: fa.status, current: "Running", acpi: fa.acpi }), "Failed");

      // A guest panic: pvpanic tells QEMU, libvirt applies on_crash=destroy → Failed.
      const panicked = nextState(
        b.client,
        (d) => d.status?.state === "Shutoff" || d.status?.state === "Crashed",
        60_000,
      );
      cb.send("echo c > /proc/sysrq-trigger\n");
      const fb = await panicked;
      assert.ok(["Crashed", "Panicked"].includes(fb.status?.reason ?? ""), JSON.stringify(fb.status));
      assert.equal(phaseFor({ domain: fb.status, current: "Running", acpi: fb.acpi }), "Failed");
    } finally {
      ca.close();
      cb.close();
    }
  });

  it("holds one launcher per VMI uid, and 5 s after kill -9 of the launcher no QEMU and no daemon of it remain", async () => {
    const pod = await startPod(nodeDir);
    pods.push(pod);
    const [vmi, prepared] = kernelBootVmi(pod, "killme");
    const r = await pod.client.call("Sync", { vmi, prepared });
    assert.equal(r.status?.state, "Running");

    // A second launcher for the same uid refuses to start (the lock is held by the whole first pod).
    const dup = podCommand({
      uid: pod.uid,
      podDir: `${pod.paths.podDir}-dup`,
      lockDir: path.join(baseDir, "locks"),
      tsvirtJs,
    });
    const code = await new Promise<number | null>((resolve) => {
      const c = spawn(dup.command, dup.args, { env: dup.env, stdio: "ignore" });
      c.on("exit", (c2) => resolve(c2));
    });
    assert.equal(code, 75);

    const procs = podProcesses(pod.pid);
    const daemon = procs.libvirtd?.[0];
    const qemu = procs["qemu-system-x86"]?.[0];
    const launcher = launcherPid(pod.pid);
    assert.ok(daemon && qemu && launcher, JSON.stringify(procs));
    process.kill(launcher, "SIGKILL");
    const killedAt = Date.now();
    await waitFor("QEMU and libvirtd to be gone", () => (!alive(qemu) && !alive(daemon)) || undefined, 5000);
    assert.ok(Date.now() - killedAt <= 5000);
    await waitFor("the pod to exit", () => !alive(pod.pid) || undefined, 5000);
  });
});
