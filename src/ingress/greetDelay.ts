// smtp-server holds every new connection for 100 ms before its 220 greeting, to catch spambots
// that talk before being greeted — a defence for public MX servers. relaybox only listens to
// devices in allow_networks, and a scanner that opens a connection per message would be capped
// at ten messages a second per connection by it. This removes the pause (and words the over-limit
// refusal as relaybox's own: 421 4.7.0); should a later smtp-server change init(), the patch
// steps aside rather than guess.
import * as connectionModule from 'smtp-server/lib/smtp-connection.js';
import { REPLY } from './replies.js';

interface ConnectionInternals {
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  name: string;
  _setListeners(done: () => void): void;
  connectionReady(): void;
  send(code: number, text: string, more?: boolean): void;
}

export function removeGreetingDelay(): boolean {
  const { SMTPConnection } = connectionModule as unknown as {
    SMTPConnection: { prototype: { init: () => void } & Partial<ConnectionInternals> };
  };
  const proto = SMTPConnection.prototype;
  const source = String(proto.init);
  if (!source.includes('connectionReady') || !source.includes('100')) return false;
  proto.init = function init(this: ConnectionInternals) {
    this._setListeners(() => {
      const { maxClients } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        return this.send(421, REPLY.tooManyConnections, false);
      }
      this.connectionReady();
    });
  };
  return true;
}
