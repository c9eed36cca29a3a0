// The running-VM verbs end to end through `tsvirt up` on real QEMU (TCG here): VNC through virt-api and the node
// agent to QEMU's VNC socket, guestosinfo without an agent, pause/unpause, soft-reboot (libvirt ACPI reboot), reset
// and restart. One cluster and one VM; the reboots are seen on the serial console and in the guest's boot_id.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { podNetns } from "../../handler/network/index.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { rfbHandshake } from "../lib/rfb.js";
import {
  type Cluster,
  type Console,
  collect,
  delay,
  netnsLink,
  qemuFor,
  startCluster,
  until,
  VIRTCTL,
} from "../lib/up.js";

requirePrereqs(...CLUSTER);

const VM = "verbs";
const SR = `/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/${VM}`;

interface Vmi {
  metadata: { uid: string };
  status: { phase: string; conditions?: { type: string; status: string; reason?: string }[] };
}

/** Waits (bounded) until `re` matches what the console printed after `from`. */
function expectAfter(con: Console, from: number, re: RegExp, timeoutMs: number): Promise<string> {
  return until(`${re} on the console`, timeoutMs, async () => re.exec(con.out.text.slice(from))?.[0]);
}

/** The guest's boot id (new on every boot, reset or not), read over the serial console. */
async function bootId(con: Console, tag: string): Promise<string> {
  const from = con.out.text.length;
  con.send(`echo ${tag}=$(cat /proc/sys/kernel/random/boot_id)\n`);
  const line = await expectAfter(con, from, new RegExp(`${tag}=([0-9a-f-]{36})`), 60_000);
  return line.slice(tag.length + 1);
}

async function vmiOf(c: Cluster): Promise<Vmi> {
  return c.getJson<Vmi>("vmi", VM);
}

/** Whether a pid is (still) a QEMU process. */
async function isQemu(pid: number): Promise<boolean> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).includes("qemu-system");
}

const cond = (v: Vmi, type: string) => v.status.conditions?.find((x) => x.type === type);

describe("running-VM verbs through tsvirt up", () => {
  it("vnc, guestosinfo, pause/unpause, soft-reboot, reset, restart on one VM", {
    timeout: 1_200_000,
  }, async (t) => {
    const c = await startCluster(t, { name: "verbs" });
    const { kubectl, virtctl, guest } = c;
    await c.apply(c.vm(VM, { runStrategy: "Always" }));
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    await c.waitFor(`vm/${VM}`, "{.status.printableStatus}", "Running", 60_000);
    const first = await vmiOf(c);
    const uid = first.metadata.uid;
    const pod = JSON.parse(
      await kubectl("get", "pods", "-l", `kubevirt.io/created-by=${uid}`, "-o", "jsonpath={.items[0].metadata}"),
    ) as { name: string; uid: string };
    // QEMU is found by the pod's network namespace (its command line names the domain, not the VMI uid).
    const netns = await netnsLink(podNetns(pod.uid));
    const qemu = await qemuFor(uid, netns);
    assert.equal(qemu.length, 1, "one QEMU for the VMI");
    const con = c.console(VM);
    await con.expect(new RegExp(guest.marker), 300_000);
    con.send("\n");
    const boot1 = await bootId(con, "boot1");

    await t.test("guestosinfo without a guest agent: 409 with KubeVirt's message", async () => {
      await assert.rejects(kubectl("get", "--raw", `${SR}/guestosinfo`), /VMI does not have guest agent connected/);
    });

    await t.test("virtctl vnc --proxy-only: QEMU's RFB handshake through virt-api and the node agent", async () => {
      const child = spawn(process.execPath, [VIRTCTL, "vnc", VM, "--proxy-only"], {
        env: c.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      const out = collect(child, true);
      t.after(() => child.kill("SIGKILL"));
      const printed = await until("virtctl vnc prints its port", 60_000, async () => /^\{.*\}\n/m.exec(out.text)?.[0]);
      const { port } = JSON.parse(printed) as { port: number };
      assert.ok(Number.isInteger(port) && port > 0, `port in ${printed}`);
      for (const round of [1, 2]) {
        const sock = connect(port, "127.0.0.1");
        try {
          const init = await rfbHandshake(sock, 60_000);
          assert.equal(init.version, "RFB 003.008\n", `round ${round}`);
          assert.ok(init.width > 0 && init.height > 0, `framebuffer ${init.width}x${init.height}`);
          assert.ok(init.name.length > 0, "a desktop name");
          t.diagnostic(`round ${round}: ${init.width}x${init.height} "${init.name}"`);
        } finally {
          sock.destroy();
        }
      }
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      child.kill("SIGINT");
      assert.equal(await exited, 0, `virtctl vnc ends cleanly on Ctrl+C: ${out.text}`);
    });

    await t.test("virtctl vnc without --proxy-only and no viewer installed: says so, exits non-zero", async () => {
      const env = { ...c.env, PATH: "/nonexistent" };
      await assert.rejects(
        new Promise<void>((resolve, reject) =>
          spawn(process.execPath, [VIRTCTL, "vnc", VM], { env, stdio: "ignore" }).once("exit", (code) =>
            code === 0 ? resolve() : reject(new Error(`exit ${code}`)),
          ),
        ),
        /exit 1/,
      );
      const r = spawn(process.execPath, [VIRTCTL, "vnc", VM], { env, stdio: ["ignore", "pipe", "pipe"] });
      const o = collect(r, true);
      await new Promise((res) => r.once("exit", res));
      assert.match(o.text, /could not find a VNC viewer .* in \$PATH/);
    });

    await t.test("pause and unpause", async () => {
      const podName = pod.name;
      assert.match(podName, /^virt-launcher-verbs-[a-z0-9]{5}$/);
      const gate = '{.status.conditions[?(@.type=="kubevirt.io/virtual-machine-unpaused")].status}';
      const podReady = '{.status.conditions[?(@.type=="Ready")].status}';
      assert.equal(await c.waitFor(`pod/${podName}`, podReady, "True", 60_000), "True");

      assert.match(await virtctl("pause", "vm", VM), /VMI verbs was scheduled to pause/);
      await c.waitFor(`vmi/${VM}`, '{.status.conditions[?(@.type=="Paused")].status}', "True", 60_000);
      await c.waitFor(`vm/${VM}`, "{.status.printableStatus}", "Paused", 60_000);
      await c.waitFor(`pod/${podName}`, gate, "False", 60_000);
      await c.waitFor(`pod/${podName}`, podReady, "False", 60_000);
      await c.waitFor(`vmi/${VM}`, '{.status.conditions[?(@.type=="Ready")].status}', "False", 60_000);
      await c.waitFor(`vm/${VM}`, '{.status.conditions[?(@.type=="Ready")].status}', "False", 60_000);
      const paused = await vmiOf(c);
      assert.equal(paused.status.phase, "Running", "a paused VMI stays Running");
      assert.equal(cond(paused, "Paused")?.reason, "PausedByUser");
      // A second pause is refused as KubeVirt does.
      await assert.rejects(virtctl("pause", "vmi", VM), /already paused/);

      // The frozen guest does not answer: what it would print stays unprinted for as long as we look (the waiting
      // is the requirement here, not a stand-in for synchronization).
      const from = con.out.text.length;
      con.send("echo frozen-$((6*7))\n");
      await delay(5_000);
      assert.doesNotMatch(con.out.text.slice(from), /frozen-42/, "a paused guest runs no command");

      assert.match(await virtctl("unpause", "vm", VM), /VMI verbs was scheduled to unpause/);
      await expectAfter(con, from, /frozen-42/, 60_000);
      await c.waitFor(`vmi/${VM}`, '{.status.conditions[?(@.type=="Paused")].status}', "", 60_000);
      await c.waitFor(`vm/${VM}`, "{.status.printableStatus}", "Running", 60_000);
      await c.waitFor(`pod/${podName}`, gate, "True", 60_000);
      await c.waitFor(`pod/${podName}`, podReady, "True", 60_000);
      await c.waitFor(`vmi/${VM}`, '{.status.conditions[?(@.type=="Ready")].status}', "True", 60_000);
      await assert.rejects(virtctl("unpause", "vmi", VM), /not paused/);
      assert.equal(await bootId(con, "still"), boot1, "pause/unpause did not reboot the guest");
    });

    let lastBoot = boot1;
    for (const verb of ["soft-reboot", "reset"] as const) {
      await t.test(`${verb}: the guest boots again in the same QEMU; the VMI stays Running with its uid`, async () => {
        const from = con.out.text.length;
        assert.match(await virtctl(verb, VM), new RegExp(`VMI verbs was scheduled to ${verb.replace("-", "")}`));
        await expectAfter(con, from, new RegExp(guest.marker), 300_000);
        con.send("\n");
        const boot = await bootId(con, `after-${verb}`);
        assert.notEqual(boot, lastBoot, "a new boot");
        lastBoot = boot;
        assert.deepEqual(await qemuFor(uid, netns), qemu, "the same QEMU process");
        const v = await vmiOf(c);
        assert.equal(v.metadata.uid, uid);
        assert.equal(v.status.phase, "Running");
        assert.equal(await kubectl("get", "vm", VM, "-o", "jsonpath={.status.printableStatus}"), "Running");
      });
    }

    await t.test("restart: a new VMI (new uid), the old QEMU gone, the guest boots again, VM Running", async () => {
      assert.match(await virtctl("restart", VM), /VM verbs was scheduled to restart/);
      const next = await until("a new VMI", 300_000, async () => {
        const v = await vmiOf(c);
        return v.metadata.uid !== uid && v.status.phase === "Running" ? v : undefined;
      });
      // By pid: the kernel reuses a freed namespace's inode number, so the new pod's namespace may look like the old.
      await until("the old QEMU gone", 120_000, async () =>
        (await Promise.all(qemu.map(isQemu))).some(Boolean) ? undefined : true,
      );
      const pod2 = JSON.parse(
        await kubectl(
          "get",
          "pods",
          "-l",
          `kubevirt.io/created-by=${next.metadata.uid}`,
          "-o",
          "jsonpath={.items[0].metadata}",
        ),
      ) as { name: string; uid: string };
      assert.notEqual(pod2.name, pod.name, "a new launcher pod");
      const qemu2 = await qemuFor(next.metadata.uid, await netnsLink(podNetns(pod2.uid)));
      assert.equal(qemu2.length, 1, "one QEMU for the new VMI");
      assert.ok(!qemu.includes(qemu2[0] ?? -1), "a new QEMU process");
      await c.waitFor(`vm/${VM}`, "{.status.printableStatus}", "Running", 120_000);
      const con2 = c.console(VM);
      await con2.expect(new RegExp(guest.marker), 300_000);
      con2.send("\n");
      assert.notEqual(await bootId(con2, "restarted"), lastBoot);
      con2.close();
    });
    con.close();
  });
});
