import { TokenError } from './errors.js';

/** A token endpoint that has not answered in this long is treated as down; the mail waits. */
export const TOKEN_REQUEST_TIMEOUT_MS = 30_000;

/** A successful token endpoint answer (RFC 6749 §5.1), as far as relaybox reads it. */
export interface TokenResponse {
  access_token: string;
  expires_in?: number;
  refresh_token?: string;
  scope?: string;
}

/** Errors that mean "your credentials or request are wrong" rather than "try later" (RFC 6749 §5.2). */
const REFUSALS = new Set(['invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'access_denied', 'expired_token']);

/** `https://login.example/tenant/oauth2/v2.0/token` without query or credentials: safe to print. */
export function endpointName(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/**
 * Form-encoded POST to an OAuth endpoint; resolves with its JSON object. An OAuth error answer
 * becomes a TokenError whose message is `error: description` (first line; Microsoft appends
 * trace ids and timestamps), so a person sees what the provider said.
 */
export async function postForm(url: string, params: Record<string, string>, timeoutMs = TOKEN_REQUEST_TIMEOUT_MS): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(params).toString(),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${Math.round(timeoutMs / 1000)}s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new TokenError(`token endpoint ${endpointName(url)} unreachable: ${why}`, 'unavailable');
  }
  const text = await response.text().catch(() => '');
  let body: Record<string, unknown> | null = null;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // handled below: a proxy's HTML error page, an empty answer
  }
  if (body && typeof body.error === 'string') {
    const description = typeof body.error_description === 'string' ? body.error_description.split(/\r?\n/)[0]!.replace(/\s*Trace ID:.*$/, '').slice(0, 300) : '';
    const refused = REFUSALS.has(body.error) || (response.status >= 400 && response.status < 500 && response.status !== 429 && body.error !== 'temporarily_unavailable');
    throw new TokenError(description ? `${body.error}: ${description}` : body.error, refused ? 'refused' : 'unavailable', body.error);
  }
  if (!response.ok || !body) {
    throw new TokenError(`token endpoint ${endpointName(url)} answered HTTP ${response.status}${body ? '' : ' without JSON'}`, 'unavailable');
  }
  return body;
}

/** Posts a token request and checks that an access token came back. */
export async function requestToken(url: string, params: Record<string, string>, timeoutMs?: number): Promise<TokenResponse> {
  const body = await postForm(url, params, timeoutMs);
  if (typeof body.access_token !== 'string' || body.access_token === '') {
    throw new TokenError(`token endpoint ${endpointName(url)} answered without an access_token`, 'unavailable');
  }
  const expires = Number(body.expires_in);
  return {
    access_token: body.access_token,
    ...(Number.isFinite(expires) && expires > 0 ? { expires_in: expires } : {}),
    ...(typeof body.refresh_token === 'string' && body.refresh_token ? { refresh_token: body.refresh_token } : {}),
    ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
  };
}
