import type { Socket } from 'node:net';
import type { SMTPServerError, SMTPServerSession } from 'smtp-server';
import type { Config } from '../config/schema.js';
import { REPLY, smtpError } from './replies.js';

export interface ConnectionLimitsOptions {
  /** `smtp.max_connections`: sessions at once, over every listen address. */
  maxConnections: number;
  /** `smtp.max_connections_per_ip`: sessions at once from one client address. */
  maxPerAddress: number;
  /** `smtp.timeouts.command`: how long a session may sit between commands. */
  commandTimeoutMs: number;
  /** `smtp.timeouts.data`: how long DATA may go without a byte. */
  dataTimeoutMs: number;
  /** When all sessions are taken, one silent this long may be closed for a new client. */
  evictSilentAfterMs?: number;
  now?: () => number;
}

/**
 * When every session is taken, one that has sent nothing for this long (and is not waiting for
 * relaybox's answer) is closed to let a new client in: stalled uploads cannot lock devices out.
 */
const EVICT_SILENT_AFTER_MS = 5_000;

/** The parts of smtp-server's connection object this reaches into (as greetDelay.ts does). */
interface ConnectionInternals {
  session: SMTPServerSession;
  _socket?: Socket;
  _handlerPending?: boolean;
  _dataStream?: unknown;
  _parser?: { _dataMode?: boolean } | false;
  send(code: number, text: string): void;
}

interface Admitted {
  connection: ConnectionInternals | undefined;
  /** The socket whose bytes are watched (a new one after STARTTLS). */
  watched: Socket | undefined;
  lastByteAt: number;
}

/**
 * Connection counts and idle deadlines. A flood of connections, or many stalled uploads, cannot
 * take more than `maxConnections` sessions (each costs memory and a file descriptor), and one
 * client address cannot take them all. smtp-server has one idle timeout for the whole session;
 * DATA gets its own here by changing the socket's timeout while a message streams in.
 */
export class ConnectionLimits {
  private readonly perAddress = new Map<string, number>();
  private readonly admitted = new Map<SMTPServerSession, Admitted>();
  private readonly now: () => number;
  private readonly evictSilentAfterMs: number;
  private refused = 0;
  private loggedAt = 0;

  constructor(private readonly options: ConnectionLimitsOptions) {
    this.now = options.now ?? Date.now;
    this.evictSilentAfterMs = options.evictSilentAfterMs ?? EVICT_SILENT_AFTER_MS;
  }

  /** From the `smtp:` section: max_connections, max_connections_per_ip, timeouts. */
  static of(smtp: Config['smtp'], evictSilentAfterMs?: number): ConnectionLimits {
    return new ConnectionLimits({
      evictSilentAfterMs,
      maxConnections: smtp.max_connections,
      maxPerAddress: smtp.max_connections_per_ip,
      commandTimeoutMs: smtp.timeouts.command,
      dataTimeoutMs: smtp.timeouts.data,
    });
  }

  /** Sessions open now. */
  get open(): number {
    return this.admitted.size;
  }

  /** Counts a new session in, or says why not (421 4.7.0: the client should try again later). */
  admit(session: SMTPServerSession, connections: Iterable<unknown>): SMTPServerError | null {
    const { maxConnections, maxPerAddress } = this.options;
    const address = session.remoteAddress;
    const fromAddress = this.perAddress.get(address) ?? 0;
    const full = this.admitted.size >= maxConnections && !this.evictSilent();
    if (full || fromAddress >= maxPerAddress) {
      this.refused += 1;
      return smtpError(421, full ? REPLY.tooManyConnections : REPLY.tooManyFromAddress(address));
    }
    this.perAddress.set(address, fromAddress + 1);
    const entry: Admitted = { connection: findConnection(session, connections), watched: undefined, lastByteAt: this.now() };
    this.admitted.set(session, entry);
    this.watch(entry);
    return null;
  }

  /** Refusals since the last time this said to log them; 0 until a minute has passed since then. */
  refusedToLog(now = Date.now()): number {
    if (now - this.loggedAt < 60_000) return 0;
    const refused = this.refused;
    this.refused = 0;
    this.loggedAt = now;
    return refused;
  }

  /** The session ended (smtp-server's onClose); sessions that were never admitted are ignored. */
  release(session: SMTPServerSession): void {
    if (!this.admitted.delete(session)) return;
    const left = (this.perAddress.get(session.remoteAddress) ?? 1) - 1;
    if (left > 0) this.perAddress.set(session.remoteAddress, left);
    else this.perAddress.delete(session.remoteAddress);
  }

  /** A message starts streaming in: the DATA deadline applies until `dataEnded`. */
  dataStarted(session: SMTPServerSession): void {
    const entry = this.admitted.get(session);
    if (entry) this.watch(entry);
    entry?.connection?._socket?.setTimeout(this.options.dataTimeoutMs);
  }

  dataEnded(session: SMTPServerSession): void {
    this.admitted.get(session)?.connection?._socket?.setTimeout(this.options.commandTimeoutMs);
  }

  /** Closes the session silent longest, if one qualifies; true when it made room. */
  private evictSilent(): boolean {
    const now = this.now();
    let silent: Admitted | undefined;
    for (const entry of this.admitted.values()) {
      if (now - entry.lastByteAt < this.evictSilentAfterMs || waitsForUs(entry.connection)) continue;
      if (!silent || entry.lastByteAt < silent.lastByteAt) silent = entry;
    }
    if (!silent?.connection) return false;
    for (const [session, entry] of this.admitted) if (entry === silent) this.release(session);
    silent.connection.send(421, REPLY.evicted);
    return true;
  }

  /** Notes the time of every byte the client sends (the socket changes at STARTTLS). */
  private watch(entry: Admitted): void {
    const socket = entry.connection?._socket;
    if (!socket || socket === entry.watched) return;
    entry.watched = socket;
    socket.on('data', () => (entry.lastByteAt = this.now()));
  }
}

/** smtp-server's own test for "the client waits for our reply" (its idle timeout skips those too). */
function waitsForUs(connection: ConnectionInternals | undefined): boolean {
  if (!connection) return true;
  return Boolean(connection._handlerPending || (connection._dataStream && connection._parser && !connection._parser._dataMode));
}

function findConnection(session: SMTPServerSession, connections: Iterable<unknown>): ConnectionInternals | undefined {
  for (const connection of connections as Iterable<ConnectionInternals>) if (connection.session === session) return connection;
  return undefined;
}
