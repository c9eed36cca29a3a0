// DataVolume helpers shared by the storage e2e files: an immediate-bind DV manifest and a slow loopback HTTP source.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

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
  return { state, url: `http://127.0.0.1:${port}/disk.raw`, close: () => server.close() };
}
