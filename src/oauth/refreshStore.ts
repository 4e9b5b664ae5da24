import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readJsonFile, refreshTokenPath, writePrivateJson } from './files.js';

/** What `<data_dir>/oauth/<upstream>.refresh.json` holds. */
export interface StoredRefreshToken {
  refresh_token: string;
  client_id: string;
  scope: string;
  obtained_at: string;
  /**
   * Fingerprint of the `refresh_token` configured when this file was written (null: none was).
   * Microsoft rotates refresh tokens on every use and ends each one after 90 days, so a rotated
   * token is kept here; the fingerprint tells whether it descends from the configured one.
   */
  replaces: string | null;
}

/** A short one-way fingerprint of a secret: enough to compare, useless to an attacker. */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 16);
}

/**
 * The refresh token to use: the stored one when the config has none, or when it replaces the
 * configured one (rotated from it, or fetched by `relaybox oauth` while it was configured); else
 * the configured one — a person who writes a new token into the config means that one.
 */
export async function currentRefreshToken(dataDir: string, upstream: string, configured: string | undefined): Promise<string | null> {
  const stored = await readStoredRefreshToken(dataDir, upstream);
  const replacesConfigured = configured === undefined || stored?.replaces === fingerprint(configured);
  if (stored && replacesConfigured) return stored.refresh_token;
  return configured ?? null;
}

/** Where the refresh token currently comes from, for check-config; reads only the file's fingerprint field. */
export function refreshTokenOrigin(dataDir: string, upstream: string, configured: string | undefined): 'stored' | 'configured' | 'none' {
  const stored = readSync(refreshTokenPath(dataDir, upstream));
  const usable = typeof stored?.refresh_token === 'string' && stored.refresh_token !== '';
  if (usable && (configured === undefined || stored?.replaces === fingerprint(configured))) return 'stored';
  return configured !== undefined ? 'configured' : 'none';
}

export async function readStoredRefreshToken(dataDir: string, upstream: string): Promise<StoredRefreshToken | null> {
  const raw = await readJsonFile(refreshTokenPath(dataDir, upstream));
  if (!raw || typeof raw.refresh_token !== 'string' || raw.refresh_token === '') return null;
  return {
    refresh_token: raw.refresh_token,
    client_id: typeof raw.client_id === 'string' ? raw.client_id : '',
    scope: typeof raw.scope === 'string' ? raw.scope : '',
    obtained_at: typeof raw.obtained_at === 'string' ? raw.obtained_at : '',
    replaces: typeof raw.replaces === 'string' ? raw.replaces : null,
  };
}

export async function storeRefreshToken(
  dataDir: string,
  upstream: string,
  token: { refreshToken: string; clientId: string; scope: string; configured: string | undefined },
): Promise<string> {
  const path = refreshTokenPath(dataDir, upstream);
  const record: StoredRefreshToken = {
    refresh_token: token.refreshToken,
    client_id: token.clientId,
    scope: token.scope,
    obtained_at: new Date().toISOString(),
    replaces: token.configured === undefined ? null : fingerprint(token.configured),
  };
  await writePrivateJson(path, record);
  return path;
}

function readSync(path: string): { refresh_token?: unknown; replaces?: unknown } | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { refresh_token?: unknown; replaces?: unknown } | null;
  } catch {
    return null; // missing or unreadable: as if none were stored
  }
}
