import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

/** Records by name (any case): `{ 'example.com': { TXT: ['v=spf1 -all'], A: ['192.0.2.1'] } }`. */
export type DnsTable = Record<string, { A?: string[]; AAAA?: string[]; TXT?: string[] }>;

const TYPES = { A: 1, TXT: 16, AAAA: 28 } as const;

/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP) answering A, AAAA and TXT from a table that a
 * test may change at any time. A name that is not in the table gets NXDOMAIN; a known name without
 * the asked type gets an empty answer (NODATA). Enough for node's c-ares resolver.
 */
export class FakeDns {
  readonly queries: string[] = [];
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
    public table: DnsTable,
  ) {}

  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(table: DnsTable = {}): Promise<FakeDns> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const dns = new FakeDns(socket, socket.address().port, table);
    socket.on('message', (msg, peer) => {
      const reply = dns.answer(msg);
      if (reply) socket.send(reply, peer.port, peer.address);
    });
    return dns;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private answer(query: Buffer): Buffer | undefined {
    if (query.length < 12) return undefined;
    // The question: labels up to a zero byte, then QTYPE and QCLASS.
    let at = 12;
    const labels: string[] = [];
    while (at < query.length && query[at] !== 0) {
      const len = query[at]!;
      labels.push(query.subarray(at + 1, at + 1 + len).toString('latin1'));
      at += len + 1;
    }
    const questionEnd = at + 5;
    if (questionEnd > query.length) return undefined;
    const qtype = query.readUInt16BE(at + 1);
    const name = labels.join('.').toLowerCase();
    this.queries.push(`${name} ${Object.entries(TYPES).find(([, v]) => v === qtype)?.[0] ?? qtype}`);

    const entry = Object.entries(this.table).find(([key]) => key.toLowerCase() === name)?.[1];
    const rdatas: Buffer[] = [];
    if (entry) {
      if (qtype === TYPES.A) for (const a of entry.A ?? []) if (isIP(a) === 4) rdatas.push(Buffer.from(a.split('.').map(Number)));
      if (qtype === TYPES.AAAA) for (const a of entry.AAAA ?? []) if (isIP(a) === 6) rdatas.push(ipv6Bytes(a));
      if (qtype === TYPES.TXT) for (const t of entry.TXT ?? []) rdatas.push(txtRdata(t));
    }
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // the query's id
    const rd = query[2]! & 0x01;
    header[2] = 0x84 | rd; // QR, AA, RD as asked
    header[3] = entry ? 0x00 : 0x03; // NOERROR or NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(rdatas.length, 6);
    const answers = rdatas.map((rdata) => {
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
    return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
  }
}

/** TXT rdata: the text in strings of at most 255 bytes each. */
function txtRdata(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length || i === 0; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
