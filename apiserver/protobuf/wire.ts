// A protobuf wire-format reader: varints, 64/32-bit fixed fields and length-delimited fields, collected per field
// number. Malformed input throws WireError; the caller turns it into a 400.

export class WireError extends Error {}

export type WireValue =
  | { wire: 0; value: bigint }
  | { wire: 1 | 5; value: Uint8Array }
  | { wire: 2; value: Uint8Array };

export class Reader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new WireError("unexpected end of data in varint");
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new WireError("varint overflows 64 bits");
  }

  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length)
      throw new WireError("unexpected end of data in a length-delimited field");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Reads one field: its number and value. */
  field(): [number, WireValue] {
    const tag = this.varint();
    const num = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (num < 1 || num > 536870911) throw new WireError(`invalid field number ${num}`);
    switch (wire) {
      case 0:
        return [num, { wire: 0, value: this.varint() }];
      case 1:
        return [num, { wire: 1, value: this.bytes(8) }];
      case 2: {
        const len = this.varint();
        if (len > BigInt(this.buf.length)) throw new WireError("length-delimited field longer than the message");
        return [num, { wire: 2, value: this.bytes(Number(len)) }];
      }
      case 5:
        return [num, { wire: 5, value: this.bytes(4) }];
      default:
        throw new WireError(`unsupported wire type ${wire}`);
    }
  }
}

/** Every field of a message, by number, in wire order (repeated fields and maps appear several times). */
export function readMessage(buf: Uint8Array): Map<number, WireValue[]> {
  const r = new Reader(buf);
  const out = new Map<number, WireValue[]>();
  while (!r.done) {
    const [num, v] = r.field();
    const list = out.get(num);
    if (list) list.push(v);
    else out.set(num, [v]);
  }
  return out;
}
