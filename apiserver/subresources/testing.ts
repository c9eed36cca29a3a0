// Test helper: virt-api's subresources over a client, served on loopback for the test's duration.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import type { Client } from "../../client/index.js";
import { createSubresourceApi } from "./index.js";

/** The base URL (http://127.0.0.1:PORT) of the subresource API over `client`, closed after the test. */
export async function serveSubresources(t: TestContext, client: Client): Promise<string> {
  const api = createSubresourceApi({ client });
  const srv = http.createServer((req, res) => void api.handleRequest(req, res));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  t.after(() => srv.close());
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}
