import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { canTraverse, ensureQemuCanReach, type QemuUser, qemuUserFrom } from "./qemu-user.js";

test("qemuUserFrom reads the user, its primary group and the groups listing it; root without libvirt-qemu", () => {
  const passwd =
    "root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:993:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n";
  const group = "kvm:x:993:\nlibvirt-qemu:x:64055:libvirt-qemu\ndisk:x:6:alice\n";
  assert.deepEqual(qemuUserFrom(passwd, group), { name: "libvirt-qemu", uid: 64055, gid: 993, groups: [993, 64055] });
  assert.equal(qemuUserFrom("root:x:0:0::/root:/bin/sh\n", "").uid, 0);
});

test("canTraverse: owner, group and other search bits, as the kernel decides", () => {
  const u: QemuUser = { name: "q", uid: 100, gid: 200, groups: [200, 300] };
  assert.equal(canTraverse({ mode: 0o700, uid: 0, gid: 0 }, u), false);
  assert.equal(canTraverse({ mode: 0o701, uid: 0, gid: 0 }, u), true);
  assert.equal(canTraverse({ mode: 0o710, uid: 0, gid: 300 }, u), true);
  assert.equal(canTraverse({ mode: 0o701, uid: 0, gid: 300 }, u), false, "group bits apply to a member, not other");
  assert.equal(canTraverse({ mode: 0o600, uid: 100, gid: 0 }, u), false);
  assert.equal(canTraverse({ mode: 0o000, uid: 5, gid: 5 }, { name: "root", uid: 0, gid: 0, groups: [0] }), true);
});

test("ensureQemuCanReach opens tsvirt's own directories to QEMU's group only, and refuses on an ancestor", async (t) => {
  const top = await mkdtemp(join(tmpdir(), "tsvirt-qemu-")); // 0700, like mktemp -d
  t.after(() => rm(top, { recursive: true, force: true }));
  await chmod(top, 0o755);
  // QEMU's stand-in: another uid, whose group is ours (so this test may chgrp without root)
  const gid = process.getgid?.() ?? 0;
  const u: QemuUser = { name: "qemu-test", uid: 64999, gid, groups: [gid] };
  const data = join(top, "data");
  const pods = join(data, "nodes", "n1", "pods");
  await mkdir(pods, { recursive: true });
  await chmod(data, 0o700);
  await chmod(join(data, "nodes"), 0o700);
  assert.deepEqual(await ensureQemuCanReach(pods, data, u), [data, join(data, "nodes")]);
  const st = await stat(data);
  assert.equal(st.mode & 0o777, 0o710, "search for the group, nothing for others");
  assert.equal(st.gid, gid);
  assert.deepEqual(await ensureQemuCanReach(pods, data, u), [], "nothing left to change");
  // an ancestor that is not tsvirt's: one line naming it, and it is left alone
  await chmod(top, 0o700);
  await assert.rejects(ensureQemuCanReach(pods, data, u), (e: Error) => {
    assert.match(e.message, new RegExp(`cannot traverse ${top} \\(mode 0700`));
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  assert.equal((await stat(top)).mode & 0o777, 0o700);
});
