// Helpers for tests of the pod network in real namespaces (root): prerequisites, commands, pings from inside a
// namespace, a guest stand-in behind a pod's masquerade bridge, and a snapshot of the host's links and routes.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connectFromNetns } from "./dial.js";
import { inNetns, runCommand } from "./exec.js";
import { MASQ_BRIDGE } from "./names.js";

export async function sh(argv: string[]): Promise<string> {
  const r = await runCommand(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** One ping from inside `fromNs`. */
/** One echo, 2 s to answer; `count` > 1 for an expected answer (a first packet may go to ARP on a loaded machine). */
export async function ping(fromNs: string, ip: string, count = 1): Promise<boolean> {
  return (await runCommand(inNetns(fromNs, ["busybox", "ping", "-c", String(count), "-W", "2", ip]))).code === 0;
}

export async function netnsList(): Promise<string[]> {
  return (await sh(["ip", "netns", "list"])).split("\n").map((l) => l.split(" ")[0] ?? "");
}

/** The host namespace's link names and routes, to show a test added nothing there. */
export async function hostNetworkState(): Promise<{ links: string[]; routes: string[] }> {
  const links = (JSON.parse(await sh(["ip", "-j", "link", "show"])) as { ifname: string }[]).map((l) => l.ifname);
  const routes = (await sh(["ip", "route", "show", "table", "all"])).trim().split("\n");
  return { links: links.sort(), routes: routes.sort() };
}

/** A VM's NIC stand-in: a namespace with a veth whose other end is a port of the pod's k6t-eth0. */
export async function makeGuest(podNs: string, guestNs: string, dir: string): Promise<Record<string, string>> {
  await sh(["ip", "netns", "add", guestNs]);
  await sh(["ip", "-n", podNs, "link", "add", "gveth", "type", "veth", "peer", "name", "eth0", "netns", guestNs]);
  await sh(["ip", "-n", podNs, "link", "set", "gveth", "master", MASQ_BRIDGE, "up"]);
  await sh(["ip", "-n", guestNs, "link", "set", "lo", "up"]);
  await sh(["ip", "-n", guestNs, "link", "set", "eth0", "up"]);
  // udhcpc's event script: record the lease and configure the interface, as a guest's DHCP client does.
  const out = join(dir, `${guestNs}.lease`);
  const script = join(dir, `${guestNs}.sh`);
  await writeFile(
    script,
    [
      "#!/bin/sh",
      'case "$1" in bound|renew)',
      `  echo "ip=$ip subnet=$subnet router=$router" > ${out}`,
      '  busybox ifconfig "$interface" "$ip" netmask "$subnet" up',
      '  busybox route add default gw "$router"',
      ";;",
      "esac",
      "",
    ].join("\n"),
  );
  await chmod(script, 0o755);
  await new Promise<void>((resolve, reject) =>
    execFile(
      "nsenter",
      [
        `--net=/run/netns/${guestNs}`,
        "--",
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-f",
        "-q",
        "-n",
        "-t",
        "20",
        "-T",
        "1",
        "-s",
        script,
      ],
      { timeout: 60_000 },
      (err, _o, stderr) => (err ? reject(new Error(`udhcpc: ${stderr}`)) : resolve()),
    ),
  );
  const fields: Record<string, string> = {};
  for (const kv of (await readFile(out, "utf8")).trim().split(" ")) {
    const [k, v] = kv.split("=");
    if (k && v) fields[k] = v;
  }
  return fields;
}

/** A TCP server in `netns` on 0.0.0.0:port that sends each client its address as it sees it, then echoes. */
export async function startEchoServer(netns: string, port: number): Promise<ChildProcess> {
  const server = spawn(
    "nsenter",
    [
      `--net=/run/netns/${netns}`,
      "--",
      process.execPath,
      "-e",
      'require("node:net").createServer((s) => { s.write(s.remoteAddress + "\\n"); s.pipe(s); })' +
        '.listen(Number(process.argv[1]), "0.0.0.0", () => console.log("listening"));',
      String(port),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    server.stdout?.once("data", () => resolve());
    server.once("exit", (code) => reject(new Error(`echo server in ${netns} exited ${code}`)));
  });
  return server;
}

/** Sends `line` to an echo server over a connection made from `fromNs`; what came back (address, then the echo). */
export async function echoFrom(fromNs: string, ip: string, port: number, line: string): Promise<string> {
  const conn = await connectFromNetns(fromNs, ip, port);
  let got = "";
  conn.on("data", (d: Buffer) => {
    got += d.toString();
  });
  conn.write(`${line}\n`);
  const deadline = Date.now() + 10_000;
  while (!got.includes(`${line}\n`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  conn.destroy();
  return got;
}
