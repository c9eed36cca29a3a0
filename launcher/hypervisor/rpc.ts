// A client of libvirt's remote protocol (src/remote/remote_protocol.x): XDR messages over the daemon's unix socket,
// one long-lived connection, calls matched to replies by serial, lifecycle events pushed by the daemon.
import net from "node:net";
import { XdrReader, XdrWriter } from "./xdr.js";

export const REMOTE_PROGRAM = 0x20008086;
const REMOTE_VERSION = 1;
const KEEPALIVE_PROGRAM = 0x6b656570; // "keep"
const KEEPALIVE_PING = 1;
const KEEPALIVE_PONG = 2;

enum MsgType {
  Call = 0,
  Reply = 1,
  Message = 2,
}
enum MsgStatus {
  Ok = 0,
  Error = 1,
}

/** Procedure numbers (remote_procedure in remote_protocol.x). */
export const Proc = {
  ConnectOpen: 1,
  ConnectClose: 2,
  ConnectGetCapabilities: 7,
  DomainCreate: 9,
  DomainDefineXml: 11,
  DomainDestroy: 12,
  DomainGetXmlDesc: 14,
  DomainGetInfo: 16,
  DomainLookupByName: 23,
  DomainReboot: 27,
  DomainResume: 28,
  DomainShutdown: 33,
  DomainSuspend: 34,
  DomainAttachDeviceFlags: 160,
  DomainAbortJob: 164,
  DomainMigrateSetMaxDowntime: 166,
  DomainGetJobStats: 298,
  DomainMigratePerform3Params: 305,
  DomainGetBlockInfo: 194,
  DomainDetachDeviceFlags: 161,
  DomainGetState: 212,
  DomainUndefineFlags: 231,
  DomainReset: 245,
  DomainBlockResize: 251,
  ConnectDomainEventCallbackRegisterAny: 316,
  DomainEventCallbackLifecycle: 318,
  DomainMigrateStartPostCopy: 364,
} as const;

/** VIR_ERR_NO_DOMAIN */
export const ERR_NO_DOMAIN = 42;
/** VIR_ERR_OPERATION_INVALID (e.g. domain is not running) */
export const ERR_OPERATION_INVALID = 55;

export class LibvirtError extends Error {
  constructor(
    readonly code: number,
    readonly domain: number,
    message: string,
  ) {
    super(message);
    this.name = "LibvirtError";
  }
}

/** remote_nonnull_domain: the daemon resolves a domain by name + uuid. */
export interface DomainRef {
  name: string;
  uuid: Buffer;
  id: number;
}

export function writeDomain(w: XdrWriter, d: DomainRef): XdrWriter {
  return w.string(d.name).fixedOpaque(d.uuid).int(d.id);
}

export function readDomain(r: XdrReader): DomainRef {
  const name = r.string();
  const uuid = r.fixedOpaque(16);
  const id = r.int();
  return { name, uuid, id };
}

/** virTypedParameterType: remote_typed_param_value's discriminant. */
export const TypedParamType = { Int: 1, UInt: 2, LLong: 3, ULLong: 4, Double: 5, Boolean: 6, String: 7 } as const;

/** One virTypedParameter. Integers are numbers (bytes and milliseconds fit a double exactly below 2^53). */
export type TypedParam =
  | { field: string; type: "int" | "uint" | "llong" | "ullong" | "double"; value: number }
  | { field: string; type: "boolean"; value: boolean }
  | { field: string; type: "string"; value: string };

/** remote_typed_param<>: a count, then {field, type, value} each. */
export function writeTypedParams(w: XdrWriter, params: readonly TypedParam[]): XdrWriter {
  w.uint(params.length);
  for (const p of params) {
    w.string(p.field);
    switch (p.type) {
      case "int":
        w.int(TypedParamType.Int).int(p.value);
        break;
      case "uint":
        w.int(TypedParamType.UInt).uint(p.value);
        break;
      case "llong":
        w.int(TypedParamType.LLong).hyper(BigInt(Math.trunc(p.value)));
        break;
      case "ullong":
        w.int(TypedParamType.ULLong).uhyper(BigInt(Math.trunc(p.value)));
        break;
      case "double":
        w.int(TypedParamType.Double).double(p.value);
        break;
      case "boolean":
        w.int(TypedParamType.Boolean).int(p.value ? 1 : 0);
        break;
      case "string":
        w.int(TypedParamType.String).string(p.value);
        break;
    }
  }
  return w;
}

export function readTypedParams(r: XdrReader): TypedParam[] {
  const n = r.uint();
  if (n > 4096) throw new Error(`XDR: ${n} typed parameters`);
  const out: TypedParam[] = [];
  for (let i = 0; i < n; i++) {
    const field = r.string();
    const type = r.int();
    switch (type) {
      case TypedParamType.Int:
        out.push({ field, type: "int", value: r.int() });
        break;
      case TypedParamType.UInt:
        out.push({ field, type: "uint", value: r.uint() });
        break;
      case TypedParamType.LLong:
        out.push({ field, type: "llong", value: Number(r.hyper()) });
        break;
      case TypedParamType.ULLong:
        out.push({ field, type: "ullong", value: Number(r.uhyper()) });
        break;
      case TypedParamType.Double:
        out.push({ field, type: "double", value: r.double() });
        break;
      case TypedParamType.Boolean:
        out.push({ field, type: "boolean", value: r.int() !== 0 });
        break;
      case TypedParamType.String:
        out.push({ field, type: "string", value: r.string() });
        break;
      default:
        throw new Error(`XDR: unknown typed parameter type ${type} for "${field}"`);
    }
  }
  return out;
}

interface Pending {
  resolve: (r: XdrReader) => void;
  reject: (e: Error) => void;
}

export type EventHandler = (proc: number, body: XdrReader) => void;

export class RemoteConnection {
  private serial = 1;
  private readonly pending = new Map<number, Pending>();
  private buf: Buffer = Buffer.alloc(0);
  private closed = false;
  private readonly eventHandlers = new Set<EventHandler>();
  private readonly closeHandlers = new Set<(err?: Error) => void>();

  private constructor(private readonly sock: net.Socket) {
    sock.on("data", (d: Buffer) => this.onData(d));
    sock.on("error", (e) => this.fail(e));
    sock.on("close", () => this.fail(new Error("libvirt connection closed")));
  }

  /** Connect to the daemon's socket and open the hypervisor connection (qemu:///system inside the pod). */
  static async open(socketPath: string, uri = "qemu:///system"): Promise<RemoteConnection> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      s.once("connect", () => {
        s.off("error", reject);
        resolve(s);
      });
      s.once("error", reject);
    });
    const conn = new RemoteConnection(sock);
    try {
      await conn.call(Proc.ConnectOpen, new XdrWriter().optString(uri).uint(0));
    } catch (e) {
      sock.destroy();
      throw e;
    }
    return conn;
  }

  onEvent(h: EventHandler): () => void {
    this.eventHandlers.add(h);
    return () => this.eventHandlers.delete(h);
  }

  onClose(h: (err?: Error) => void): void {
    this.closeHandlers.add(h);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  call(proc: number, args?: XdrWriter): Promise<XdrReader> {
    if (this.closed) return Promise.reject(new Error("libvirt connection closed"));
    const serial = this.serial++;
    const body = args ? args.toBuffer() : Buffer.alloc(0);
    const header = Buffer.alloc(28);
    header.writeUInt32BE(28 + body.length, 0);
    header.writeUInt32BE(REMOTE_PROGRAM, 4);
    header.writeUInt32BE(REMOTE_VERSION, 8);
    header.writeInt32BE(proc, 12);
    header.writeInt32BE(MsgType.Call, 16);
    header.writeUInt32BE(serial, 20);
    header.writeInt32BE(MsgStatus.Ok, 24);
    return new Promise((resolve, reject) => {
      this.pending.set(serial, { resolve, reject });
      this.sock.write(Buffer.concat([header, body]));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await Promise.race([this.call(Proc.ConnectClose), new Promise((r) => setTimeout(r, 1000))]);
    } catch {
      // closing anyway
    }
    this.sock.destroy();
    this.fail(new Error("libvirt connection closed"));
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const h of this.closeHandlers) h(err);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len < 28 || len > 64 * 1024 * 1024) {
        this.sock.destroy();
        this.fail(new Error(`libvirt protocol: bad packet length ${len}`));
        return;
      }
      if (this.buf.length < len) return;
      const pkt = this.buf.subarray(0, len);
      this.buf = this.buf.subarray(len);
      this.onPacket(pkt);
    }
  }

  private onPacket(pkt: Buffer): void {
    const prog = pkt.readUInt32BE(4);
    const proc = pkt.readInt32BE(12);
    const type = pkt.readInt32BE(16);
    const serial = pkt.readUInt32BE(20);
    const status = pkt.readInt32BE(24);
    const body = new XdrReader(Buffer.from(pkt.subarray(28)));
    if (prog === KEEPALIVE_PROGRAM) {
      if (proc === KEEPALIVE_PING) this.sendKeepalive(KEEPALIVE_PONG);
      return;
    }
    if (prog !== REMOTE_PROGRAM) return;
    if (type === MsgType.Message) {
      for (const h of this.eventHandlers) h(proc, body);
      return;
    }
    if (type !== MsgType.Reply) return;
    const p = this.pending.get(serial);
    if (!p) return;
    this.pending.delete(serial);
    if (status === MsgStatus.Error) {
      p.reject(readError(body));
    } else {
      p.resolve(body);
    }
  }

  private sendKeepalive(proc: number): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(28, 0);
    h.writeUInt32BE(KEEPALIVE_PROGRAM, 4);
    h.writeUInt32BE(1, 8);
    h.writeInt32BE(proc, 12);
    h.writeInt32BE(MsgType.Message, 16);
    h.writeUInt32BE(0, 20);
    h.writeInt32BE(MsgStatus.Ok, 24);
    this.sock.write(h);
  }
}

/** remote_error: code, domain, message (optional string), then fields we do not need. */
function readError(r: XdrReader): LibvirtError {
  try {
    const code = r.int();
    const domain = r.int();
    const message = r.optString() ?? `libvirt error ${code}`;
    return new LibvirtError(code, domain, message);
  } catch {
    return new LibvirtError(-1, 0, "libvirt error (undecodable)");
  }
}
