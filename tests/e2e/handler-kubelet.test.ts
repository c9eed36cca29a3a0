// A launcher started the way a kubelet starts it, not by the embedded pod runner: a node agent in kubelet mode
// (`tsvirt handler --no-pod-runner`) on a node of its own; the test plays the kubelet: it runs the launcher pod's
// command (with the command socket at the node's well-known path <node dir>/sockets/<vmi uid>_sock) in a network
// namespace it made, and reports the pod Running through the API. The agent finds the launcher by its socket alone
// and drives it to a running guest; `virtctl stop` then ends it the way it ends every VM.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadConfig, type Pod, RestClient, resources } from "../../client/index.js";
import { commandSocketPath, podCommand, podPaths, terminatePod } from "../../launcher/index.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { collect, netnsLink, qemuFor, run, startCluster, TSVIRT, until } from "../lib/up.js";

describe("virt-handler drives a launcher a kubelet started", () => {
  it("finds it at <node dir>/sockets/<uid>_sock, boots the guest, and stops it", { timeout: 600_000 }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "kubelet" });
    const node = `kub${process.pid % 100000}`;
    const nodeDir = join(c.dir, "kubelet-node");
    await mkdir(nodeDir, { recursive: true });
    await chmod(nodeDir, 0o755);

    // The node agent in kubelet mode: it runs no pod itself.
    const agent = spawn(
      process.execPath,
      [TSVIRT, "handler", "--node", node, "--kubeconfig", c.kubeconfig, "--data-dir", nodeDir, "--no-pod-runner"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const agentOut = collect(agent, true);
    t.after(() => agent.kill("SIGKILL"));
    await until(`node ${node} registered`, 120_000, () => c.kubectl("get", "node", node).then(() => true));
    await c.kubectl("wait", "--for=condition=Ready", `node/${node}`, "--timeout=120s");

    // A VM pinned to that node, without a pod network (nothing but a kubelet's CNI would give it one).
    const vm = c.vm("kvm1", { runStrategy: "Always", nodeSelector: { "kubernetes.io/hostname": node } }) as {
      spec: { template: { spec: Record<string, unknown> & { domain: { devices: Record<string, unknown> } } } };
    };
    const spec = vm.spec.template.spec;
    delete spec.networks;
    delete spec.domain.devices.interfaces;
    spec.domain.devices.autoattachPodInterface = false;
    await c.apply(vm);

    // The kubelet: the launcher pod bound to the node.
    const pod = await until("the launcher pod bound to the kubelet node", 120_000, async () => {
      const list = await c.getJson<{ items: Pod[] }>("pods", "-l", "kubevirt.io=virt-launcher");
      return list.items.find((p) => p.spec.nodeName === node);
    });
    const vmiUid = pod.metadata.ownerReferences?.find((r) => r.kind === "VirtualMachineInstance")?.uid ?? "";
    assert.ok(vmiUid, "the pod names its VMI");
    const podDir = join(nodeDir, "kubelet-pods", (pod.metadata.uid ?? "").replaceAll("-", "").slice(0, 16));
    await mkdir(podDir, { recursive: true });
    const netns = `tsvk${process.pid % 100000}`;
    await run("ip", ["netns", "add", netns]);
    t.after(() => run("ip", ["netns", "del", netns]).catch(() => ""));
    const cmd = podCommand({
      uid: vmiUid,
      podDir,
      lockDir: join(nodeDir, "locks"),
      nodeDir,
      tsvirtJs: TSVIRT,
      accel: process.env.TSVIRT_ACCEL ?? "auto",
    });
    const socket = commandSocketPath(nodeDir, vmiUid);
    assert.ok(cmd.args.includes(socket), "the launcher is told its socket on its command line");
    await mkdir(join(nodeDir, "locks"), { recursive: true });
    // `ip netns exec` execs the pod's command: its pid is the pod's unshare.
    const launcher: ChildProcess = spawn("ip", ["netns", "exec", netns, cmd.command, ...cmd.args], {
      env: cmd.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const launcherOut = collect(launcher, true);
    t.after(() => {
      try {
        if (launcher.pid) process.kill(-launcher.pid, "SIGKILL");
      } catch {
        // gone
      }
    });
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const api = new RestClient(loadConfig({ kubeconfig: c.kubeconfig }));
    t.after(() => api.close());
    const cur = await api.get<Pod>(resources.pods, "default", pod.metadata.name ?? "");
    await api.updateStatus(resources.pods, {
      ...cur,
      status: {
        phase: "Running",
        hostIP: "127.0.0.1",
        startTime: now,
        conditions: [
          { type: "PodScheduled", status: "True", lastTransitionTime: now },
          { type: "Initialized", status: "True", lastTransitionTime: now },
          { type: "ContainersReady", status: "True", lastTransitionTime: now },
          { type: "Ready", status: "True", lastTransitionTime: now },
        ],
        containerStatuses: [
          {
            name: "compute",
            ready: true,
            started: true,
            restartCount: 0,
            image: cur.spec.containers[0]?.image ?? "",
            imageID: "",
            state: { running: { startedAt: now } },
          },
        ],
      },
    });

    // The agent dials the socket, pulls the disk, sends the VMI: the guest boots.
    const vmi = `kvm1`;
    try {
      await c.waitFor(`vmi/${vmi}`, "{.status.phase}", "Running", 240_000);
      const serial = podPaths(podDir).serialLog;
      await until("TSVIRT-GUEST-READY on the guest's console", 240_000, async () =>
        (await readFile(serial, "utf8").catch(() => "")).includes("TSVIRT-GUEST-READY") ? true : undefined,
      );
    } catch (e) {
      throw new Error(
        `${String(e)}\nagent:\n${agentOut.text.slice(-3000)}\nlauncher:\n${launcherOut.text.slice(-2000)}\n${await readFile(podPaths(podDir).logFile, "utf8").catch(() => "")}`,
      );
    }
    assert.ok(existsSync(socket), `the launcher listens on ${socket}`);
    assert.ok(
      agentOut.text.split("\n").some((l) => l.includes("attached to launcher") && l.includes(`${vmiUid}_sock`)),
      "the agent dialled the launcher's socket",
    );
    assert.ok(!existsSync(join(nodeDir, "pods")), "the agent ran no pod itself");
    const nsLink = await netnsLink(netns);
    assert.equal((await qemuFor(vmiUid, nsLink)).length, 1, "one QEMU, in the kubelet's pod");
    assert.equal(await c.kubectl("get", "vm", "kvm1", "-o", "jsonpath={.status.printableStatus}"), "Running");

    // virtctl stop: the agent shuts the guest down through the socket; the kubelet ends the pod and removes it.
    await c.virtctl("stop", "kvm1");
    await until("the launcher pod marked for deletion", 60_000, async () => {
      const p = await api.get<Pod>(resources.pods, "default", pod.metadata.name ?? "");
      return p.metadata.deletionTimestamp ? true : undefined;
    });
    terminatePod(launcher.pid ?? 0);
    await until("the launcher pod's processes gone", 120_000, async () =>
      launcher.exitCode !== null || launcher.signalCode !== null ? true : undefined,
    );
    await api.delete(resources.pods, "default", pod.metadata.name ?? "", { gracePeriodSeconds: 0 });
    await c.waitFor("vm/kvm1", "{.status.printableStatus}", "Stopped", 120_000);
    assert.deepEqual(await qemuFor(vmiUid, nsLink), [], "no QEMU left");
  });
});
