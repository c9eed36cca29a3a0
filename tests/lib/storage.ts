// DataVolume helpers shared by the storage e2e files: an immediate-bind DV manifest, a slow loopback HTTP source, where
// a claim's bytes are on the node, and a guest reading/writing the head of its second disk over the serial console.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Cluster, type Console, until } from "./up.js";

export const IMMEDIATE = "cdi.kubevirt.io/storage.bind.immediate.requested";

/** A DataVolume in `default`, bound at once (no consumer needed), from `source`, of `size`. */
export function dv(name: string, source: Record<string, unknown>, size: string): Record<string, unknown> {
  return {
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name, namespace: "default", annotations: { [IMMEDIATE]: "true" } },
    spec: { source, storage: { resources: { requests: { storage: size } } } },
  };
}

/** A loopback HTTP server that sends `data` at about `bytesPerSec`, counting what it has sent. */
export async function slowServer(data: Buffer, bytesPerSec: number) {
  const state = { sent: 0, requests: 0 };
  const chunk = 256 * 1024;
  const server = createServer((req, res) => {
    state.requests++;
    state.sent = 0;
    if (req.url !== "/disk.raw") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(data.length) });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    let off = 0;
    const tick = () => {
      if (res.destroyed) return;
      const end = Math.min(off + chunk, data.length);
      res.write(data.subarray(off, end));
      state.sent += end - off;
      off = end;
      if (off >= data.length) res.end();
      else setTimeout(tick, (chunk / bytesPerSec) * 1000);
    };
    tick();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    state,
    url: `http://127.0.0.1:${port}/disk.raw`,
    close: () => {
      // a killed or held importer may leave its stream open: end it, or the test process stays up
      server.closeAllConnections();
      server.close();
    },
  };
}

/** The claim's local volume: its PV, the node it is pinned to and its disk.img in that node's data dir. */
export async function volumeFile(c: Cluster, claim: string): Promise<{ pv: string; node: string; image: string }> {
  const pv = await c.kubectl("get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}");
  const node = await c.kubectl(
    "get",
    "pv",
    pv,
    "-o",
    "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
  );
  return { pv, node, image: join(c.dir, "nodes", node, "volumes", pv, "disk.img") };
}

/** A console on the VM's guest once it has booted (its marker seen, a prompt asked for). */
export async function bootedConsole(c: Cluster, vm: string): Promise<Console> {
  const con = c.console(vm);
  await con.expect(new RegExp(c.guest.marker), 300_000);
  con.send("\n");
  return con;
}

/** The first `length` bytes of the guest's /dev/vdb (non-name characters as '.'), read over the serial console. */
export async function readDiskHead(con: Console, tag: string, length: number): Promise<string> {
  const from = con.out.text.length;
  // The tag is split in the typed line (TAG''=) so the console's echo of the command never matches.
  con.send(`echo ${tag}''=[$(head -c ${length} /dev/vdb | tr -c 'A-Za-z0-9-' '.')]\n`);
  const re = new RegExp(`${tag}=\\[([^\\]\\r\\n]*)\\]`);
  return until(`${tag} on the console`, 60_000, async () => re.exec(con.out.text.slice(from))?.[1]);
}
