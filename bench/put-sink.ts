// The upload baseline's receiver: a minimal loopback HTTP server that writes a PUT body to one file, fsyncs it and
// only then answers 201 (what an upload must at least do to be durable). Nothing else: no parsing, no checks.
import { open } from "node:fs/promises";
import { createServer, type Server } from "node:http";

export interface PutSink {
  url: string;
  close(): Promise<void>;
}

/** Serves PUT on 127.0.0.1 (a free port); every body goes to `file` (truncated first). */
export async function startPutSink(file: string): Promise<PutSink> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "PUT") {
      res.writeHead(405).end();
      return;
    }
    void (async () => {
      const fh = await open(file, "w");
      let bytes = 0;
      try {
        for await (const chunk of req) {
          const b = chunk as Buffer;
          await fh.write(b, 0, b.length);
          bytes += b.length;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      res.writeHead(201, { "content-type": "text/plain" }).end(`${bytes}\n`);
    })().catch((e: unknown) => {
      res.writeHead(500).end(String(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  if (typeof a !== "object" || !a) throw new Error("put sink: no address");
  return {
    url: `http://127.0.0.1:${a.port}/upload`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
