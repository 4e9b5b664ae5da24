import type { AuthEvent, AuthService, RelayEvents } from '../events.js';

export interface ActiveLockout {
  service: AuthService;
  client: string;
  until: string;
}

/** The client addresses locked out now after failed logins, from the event bus (the console shows them). */
export class AuthLockouts {
  private readonly lockouts = new Map<string, { service: AuthService; client: string; until: number }>();
  private readonly onAuth = (e: AuthEvent) => {
    if (e.event === 'auth_locked' && e.until) this.lockouts.set(`${e.service} ${e.client}`, { service: e.service, client: e.client, until: e.until.getTime() });
  };

  constructor(private readonly events: RelayEvents) {
    events.on('auth', this.onAuth);
  }

  /** Lockouts not yet over, the one ending last first. */
  active(now = Date.now()): ActiveLockout[] {
    for (const [key, l] of this.lockouts) if (l.until <= now) this.lockouts.delete(key);
    return [...this.lockouts.values()].sort((a, b) => b.until - a.until).map((l) => ({ service: l.service, client: l.client, until: new Date(l.until).toISOString() }));
  }

  close(): void {
    this.events.off('auth', this.onAuth);
  }
}
