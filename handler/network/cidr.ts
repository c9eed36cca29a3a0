// IPv4 CIDR arithmetic for the pod network (pure).

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  readonly network: number;
  readonly prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIpv4(s: string): number {
  const m = IPV4.exec(s);
  if (!m) throw new Error(`invalid IPv4 address "${s}"`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) throw new Error(`invalid IPv4 address "${s}"`);
    n = n * 256 + octet;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "10.244.0.0/24"; the address must be the network address. Prefix 8..30 (room for a gateway and a pod). */
export function parseCidr(s: string): Cidr {
  const [addr, len, ...rest] = s.split("/");
  if (addr === undefined || len === undefined || rest.length > 0 || !/^\d{1,2}$/.test(len)) {
    throw new Error(`invalid CIDR "${s}"`);
  }
  const prefix = Number(len);
  if (prefix < 8 || prefix > 30) throw new Error(`CIDR "${s}": prefix must be between 8 and 30`);
  const ip = parseIpv4(addr);
  const network = (ip & mask(prefix)) >>> 0;
  if (network !== ip) throw new Error(`CIDR "${s}" has host bits set (network is ${formatIpv4(network)}/${prefix})`);
  return { network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}

export function netmask(c: Cidr): string {
  return formatIpv4(mask(c.prefix));
}

/** The gateway is the first usable address of the range (the node bridge). */
export function gatewayOf(c: Cidr): string {
  return formatIpv4(c.network + 1);
}

/** Pod addresses: from the second usable address to the last one before broadcast. */
export function podRange(c: Cidr): { first: number; last: number } {
  const size = 2 ** (32 - c.prefix);
  return { first: c.network + 2, last: c.network + size - 2 };
}

export function contains(c: Cidr, ip: string): boolean {
  return (parseIpv4(ip) & mask(c.prefix)) >>> 0 === c.network;
}
