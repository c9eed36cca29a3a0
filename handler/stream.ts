// A byte stream between a WebSocket (subprotocol plain.kubevirt.io) and a unix socket in a launcher pod: the serial
// console (the launcher's console proxy) and VNC (QEMU's VNC socket) are both served this way, as virt-handler's
// console server does. The unix socket is dialled before the upgrade is answered, so a missing socket is an HTTP
// error the API server can pass on, not an open stream that closes at once. Both ends are pinged every 15 s.
import type { IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../lib/log.js";

export const STREAM_SUBPROTOCOL = "plain.kubevirt.io";
export const STREAM_PING_MS = 15_000;

/** The WebSocket server shared by every stream of one node agent (no server of its own: upgrades are handed in). */
export function streamServer(): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has(STREAM_SUBPROTOCOL) ? STREAM_SUBPROTOCOL : false),
  });
}

function refuse(socket: Duplex, code: number, text: string, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: code === 404 ? "NotFound" : "ServiceUnavailable",
    code,
  });
  socket.end(
    `HTTP/1.1 ${code} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Answers an upgrade with 404 and a Status naming what was not found. */
export function refuseNotFound(socket: Duplex, message: string): void {
  refuse(socket, 404, "Not Found", message);
}

/**
 * Connects `path` (a unix socket) and, once it answers, completes the WebSocket upgrade and relays bytes both ways
 * until either side closes. Resolves with the WebSocket, or undefined when the socket could not be reached (the
 * upgrade is then answered 503).
 */
export function bridgeUnixSocket(
  wss: WebSocketServer,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  path: string,
  what: string,
  log: Logger,
): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const unix: Socket = connect(path);
    const abandon = (): void => {
      unix.destroy();
    };
    socket.once("close", abandon);
    unix.once("error", (err) => {
      log.warn(`${what} socket unavailable`, { err });
      refuse(socket, 503, "Service Unavailable", `${what} of this VMI is not available: ${err.message}`);
      resolve(undefined);
    });
    unix.once("connect", () => {
      socket.off("close", abandon);
      unix.removeAllListeners("error");
      // Until the WebSocket is open, bytes from the unix socket (e.g. an RFB banner) wait in its buffer.
      unix.pause();
      wss.handleUpgrade(req, socket, head, (ws) => {
        let throttled = false;
        unix.on("data", (d: Buffer) => {
          if (ws.readyState !== ws.OPEN) return;
          ws.send(d, { binary: true });
          // Back-pressure: stop reading while the WebSocket has a lot queued.
          if (!throttled && ws.bufferedAmount > 1 << 20) {
            throttled = true;
            unix.pause();
            const resume = setInterval(() => {
              if (ws.readyState !== ws.OPEN || ws.bufferedAmount < 1 << 18) {
                clearInterval(resume);
                throttled = false;
                unix.resume();
              }
            }, 10);
          }
        });
        ws.on("message", (d: Buffer | Buffer[] | ArrayBuffer) => {
          unix.write(Array.isArray(d) ? Buffer.concat(d) : Buffer.isBuffer(d) ? d : Buffer.from(d));
        });
        const ping = setInterval(() => ws.ping(), STREAM_PING_MS);
        const end = (): void => {
          clearInterval(ping);
          unix.destroy();
          if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
        };
        ws.on("close", end);
        ws.on("error", end);
        unix.on("close", end);
        unix.on("error", end);
        unix.resume();
        resolve(ws);
      });
    });
  });
}
