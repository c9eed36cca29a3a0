// XDR (RFC 4506) encoding and decoding: just the shapes libvirt's remote protocol uses.

export class XdrWriter {
  private chunks: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }
  int(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.push(b);
  }
  uint(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.push(b);
  }
  hyper(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    return this.push(b);
  }
  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }
  uhyper(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return this.push(b);
  }
  double(v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return this.push(b);
  }
  /** Fixed-length opaque (e.g. a 16-byte UUID): no length word, padded to 4. */
  fixedOpaque(b: Buffer): this {
    this.push(b);
    const pad = (4 - (b.length % 4)) % 4;
    return pad ? this.push(Buffer.alloc(pad)) : this;
  }
  opaque(b: Buffer): this {
    this.uint(b.length);
    return this.fixedOpaque(b);
  }
  string(s: string): this {
    return this.opaque(Buffer.from(s, "utf8"));
  }
  /** An optional string (libvirt's remote_string: a pointer, i.e. a bool then the value). */
  optString(s: string | undefined): this {
    if (s === undefined) return this.bool(false);
    return this.bool(true).string(s);
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

export class XdrReader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new Error(`XDR: need ${n} bytes at ${this.off}, have ${this.buf.length}`);
  }
  int(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.off);
    this.off += 4;
    return v;
  }
  uint(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  hyper(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.off);
    this.off += 8;
    return v;
  }
  uhyper(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }
  bool(): boolean {
    return this.int() !== 0;
  }
  double(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.off);
    this.off += 8;
    return v;
  }
  fixedOpaque(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n + ((4 - (n % 4)) % 4);
    return Buffer.from(b);
  }
  opaque(): Buffer {
    return this.fixedOpaque(this.uint());
  }
  string(): string {
    return this.opaque().toString("utf8");
  }
  optString(): string | undefined {
    return this.bool() ? this.string() : undefined;
  }
  get remaining(): number {
    return this.buf.length - this.off;
  }
}
