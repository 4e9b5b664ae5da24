import { createHash, generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the fake token endpoint answered; `params` are the form fields (secrets included: it is a test). */
export interface TokenRequest {
  grant: string;
  params: Record<string, string>;
  status: number;
}

interface Grantee {
  user: string | null;
  clientId: string;
  scope: string;
}

export interface FakeOauthOptions {
  /** client_id → client_secret; null: a public client that sends no secret. */
  clients?: Record<string, string | null>;
  /** A Workspace service account: its email and the public half of the key the test generated. */
  serviceAccount?: { clientEmail: string; publicKey: KeyObject | string };
  /** expires_in of every access token, in seconds. */
  expiresIn?: number;
  /** Microsoft's habit: every refresh answers with a new refresh token. */
  rotateRefreshTokens?: boolean;
  /** Device flow: what the polls are answered before the (simulated) person approves. */
  deviceWaits?: Array<'authorization_pending' | 'slow_down'>;
  /** Device flow: the mailbox the person signs in as. */
  deviceUser?: string;
  /** Device flow: the person never finishes (every poll is authorization_pending). */
  devicePendingForever?: boolean;
  /** Device flow: expires_in of the user code (default 600). */
  deviceExpiresIn?: number;
  /** The device authorization endpoint answers this documented error instead of a code. */
  deviceCodeError?: OAuthErrorReply;
  /** The token endpoint answers this documented error to every request of the grant (`authorization_code`, `device_code`, …). */
  tokenErrors?: Record<string, OAuthErrorReply>;
  /** The consent page sends the browser back with this error instead of a code (the person clicked Cancel, consent missing…). */
  authorizeError?: { error: string; error_description?: string };
  /** Entra apps with a certificate credential: client_id → the certificate's public key and SHA-1 thumbprint (base64url). */
  certificates?: Record<string, { publicKey: KeyObject | string; thumbprint: string }>;
}

/** An OAuth error answer as the providers document it (RFC 6749 §5.2; Microsoft adds AADSTS codes to the description). */
export interface OAuthErrorReply {
  status: number;
  error: string;
  error_description?: string;
}

/** Microsoft's replies, word for word up to the trace ids (learn.microsoft.com, Entra error codes). */
export const MICROSOFT_ERRORS = {
  publicClientOff: { status: 401, error: 'invalid_client', error_description: "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'. Trace ID: 0f1e Correlation ID: 9a8b Timestamp: 2026-11-27 10:00:00Z" },
  appNotFound: { status: 400, error: 'unauthorized_client', error_description: "AADSTS700016: Application with identifier 'public-app' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant." },
  consentMissing: { status: 400, error: 'invalid_grant', error_description: "AADSTS65001: The user or administrator has not consented to use the application with ID 'public-app' named 'relaybox'." },
} satisfies Record<string, OAuthErrorReply>;

/** Google's replies (developers.google.com/identity/protocols/oauth2/native-app). */
export const GOOGLE_ERRORS = {
  codeUsed: { status: 400, error: 'invalid_grant', error_description: 'Bad Request' },
  wrongSecret: { status: 401, error: 'invalid_client', error_description: 'Unauthorized' },
  redirectMismatch: { status: 400, error: 'redirect_uri_mismatch', error_description: 'Bad Request' },
} satisfies Record<string, OAuthErrorReply>;

/** What each grant may ask for: Exchange SMTP or Graph app-only; Gmail's full or send-only scope. */
const SCOPES: Record<string, string[]> = {
  client_credentials: ['https://outlook.office365.com/.default', 'https://graph.microsoft.com/.default'],
  jwt: ['https://mail.google.com/', 'https://www.googleapis.com/auth/gmail.send'],
};

/**
 * Stands in for Google's and Microsoft's OAuth endpoints on 127.0.0.1: `/token` for the
 * refresh_token, jwt-bearer (checks the claims and the RS256 signature), client_credentials,
 * authorization_code (checks the PKCE verifier) and device_code grants; `/authorize`, which
 * redirects straight back with a code as if the person had consented; `/devicecode`.
 */
export class FakeOauth {
  readonly requests: TokenRequest[] = [];
  url = '';
  private server: Server | undefined;
  private readonly accessTokens = new Map<string, Grantee & { expiresAt: number }>();
  private readonly refreshTokens = new Map<string, Grantee>();
  private readonly codes = new Map<string, Grantee & { redirectUri: string; challenge: string }>();
  private readonly devices = new Map<string, { clientId: string; scope: string; polls: number }>();

  private constructor(private readonly options: FakeOauthOptions) {}

  static async start(options: FakeOauthOptions = {}): Promise<FakeOauth> {
    const fake = new FakeOauth(options);
    const server = createServer((req, res) => void fake.route(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    fake.server = server;
    fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return fake;
  }

  get tokenUrl(): string {
    return `${this.url}/token`;
  }

  get authUrl(): string {
    return `${this.url}/authorize`;
  }

  /** Token requests so far, of one grant type when given (`refresh_token`, `jwt-bearer`, …). */
  tokenRequests(grant?: string): number {
    return this.requests.filter((r) => !grant || r.grant === grant).length;
  }

  /** A refresh token as if a person had consented earlier. */
  addRefreshToken(token: string, grantee: { user: string; clientId: string; scope?: string }): void {
    this.refreshTokens.set(token, { user: grantee.user, clientId: grantee.clientId, scope: grantee.scope ?? '' });
  }

  /** The person revoked access, or Google's 7-day "Testing" limit passed: the next refresh gets invalid_grant. */
  revokeRefreshToken(token: string): void {
    this.refreshTokens.delete(token);
  }

  /** Every access token issued so far stops working (the mail server will refuse them). */
  expireAccessTokens(): void {
    this.accessTokens.clear();
  }

  /** For TestUpstream's `xoauth2`: is this a live token, issued for this user (app-only tokens: any user)? With `scope`: for that scope only. */
  accepts(user: string, token: string, scope?: string): boolean {
    const grant = this.accessTokens.get(token);
    return !!grant && grant.expiresAt > Date.now() && (grant.user === null || grant.user === user) && (scope === undefined || grant.scope === scope);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    if (req.method === 'GET' && url.pathname === '/authorize') return this.authorize(url.searchParams, res);
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const params = Object.fromEntries(new URLSearchParams(body));
    if (req.method === 'POST' && url.pathname === '/devicecode') return this.deviceCode(params, res);
    if (req.method === 'POST' && url.pathname === '/token') {
      const grant = (params.grant_type ?? '').replace('urn:ietf:params:oauth:grant-type:', '');
      const [status, answer] = this.token(grant, params);
      this.requests.push({ grant, params, status });
      return json(res, status, answer);
    }
    json(res, 404, { error: 'not_found' });
  }

  private authorize(q: URLSearchParams, res: ServerResponse): void {
    const clientId = q.get('client_id') ?? '';
    const redirectUri = q.get('redirect_uri') ?? '';
    if (!(clientId in (this.options.clients ?? {})) || q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256' || !redirectUri) {
      return json(res, 400, { error: 'invalid_request' });
    }
    if (this.options.authorizeError) {
      const back = new URL(redirectUri);
      for (const [key, value] of Object.entries(this.options.authorizeError)) back.searchParams.set(key, value);
      back.searchParams.set('state', q.get('state') ?? '');
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }
    const code = `code-${randomBytes(8).toString('hex')}`;
    this.codes.set(code, { user: q.get('login_hint'), clientId, scope: q.get('scope') ?? '', redirectUri, challenge: q.get('code_challenge') ?? '' });
    const back = new URL(redirectUri);
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state') ?? '');
    res.writeHead(302, { location: back.toString() }).end();
  }

  private deviceCode(params: Record<string, string>, res: ServerResponse): void {
    if (!(params.client_id! in (this.options.clients ?? {}))) return json(res, 400, { error: 'invalid_client' });
    const refusal = this.options.deviceCodeError;
    if (refusal) return json(res, refusal.status, { error: refusal.error, error_description: refusal.error_description });
    const deviceCode = `device-${randomBytes(8).toString('hex')}`;
    this.devices.set(deviceCode, { clientId: params.client_id!, scope: params.scope ?? '', polls: 0 });
    json(res, 200, { device_code: deviceCode, user_code: 'ABCD-EFGH', verification_uri: `${this.url}/device`, expires_in: this.options.deviceExpiresIn ?? 600, interval: 1 });
  }

  private token(grant: string, p: Record<string, string>): [number, Record<string, unknown>] {
    const refusal = this.options.tokenErrors?.[grant];
    if (refusal) return [refusal.status, { error: refusal.error, error_description: refusal.error_description }];
    if (grant === 'jwt-bearer') return this.jwtBearer(p.assertion ?? '');
    const clients = this.options.clients ?? {};
    const clientId = p.client_id ?? '';
    if (grant === 'client_credentials' && p.client_assertion !== undefined) {
      const refusal = this.clientAssertionRefusal(clientId, p);
      if (refusal) return [401, { error: 'invalid_client', error_description: refusal }];
      if (!SCOPES.client_credentials!.includes(p.scope ?? '')) return [400, { error: 'invalid_scope' }];
      return [200, this.issue({ user: null, clientId, scope: p.scope! })];
    }
    if (!(clientId in clients) || (clients[clientId] !== null && clients[clientId] !== p.client_secret)) {
      return [401, { error: 'invalid_client', error_description: 'The OAuth client was not found or its secret is wrong.' }];
    }
    if (grant === 'client_credentials') {
      if (!SCOPES.client_credentials!.includes(p.scope ?? '')) return [400, { error: 'invalid_scope' }];
      return [200, this.issue({ user: null, clientId, scope: p.scope! })];
    }
    if (grant === 'refresh_token') {
      const known = this.refreshTokens.get(p.refresh_token ?? '');
      if (!known || known.clientId !== clientId) return [400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' }];
      if (!this.options.rotateRefreshTokens) return [200, this.issue(known)];
      this.refreshTokens.delete(p.refresh_token!);
      return [200, { ...this.issue(known), refresh_token: this.newRefreshToken(known) }];
    }
    if (grant === 'authorization_code') {
      const code = this.codes.get(p.code ?? '');
      this.codes.delete(p.code ?? '');
      if (!code || code.clientId !== clientId || code.redirectUri !== p.redirect_uri) return [400, { error: 'invalid_grant', error_description: 'Bad code or redirect_uri.' }];
      const challenge = createHash('sha256').update(p.code_verifier ?? '').digest('base64url');
      if (challenge !== code.challenge) return [400, { error: 'invalid_grant', error_description: 'PKCE verification failed.' }];
      return [200, { ...this.issue(code), refresh_token: this.newRefreshToken(code) }];
    }
    if (grant === 'device_code') {
      const device = this.devices.get(p.device_code ?? '');
      if (!device) return [400, { error: 'expired_token' }];
      const wait = this.options.devicePendingForever ? 'authorization_pending' : (this.options.deviceWaits ?? ['authorization_pending'])[device.polls++];
      if (wait) return [400, { error: wait }];
      this.devices.delete(p.device_code!);
      const grantee = { user: this.options.deviceUser ?? null, clientId, scope: device.scope };
      return [200, { ...this.issue(grantee), refresh_token: this.newRefreshToken(grantee) }];
    }
    return [400, { error: 'unsupported_grant_type' }];
  }

  /** Checks what Google checks of a service-account assertion: signature, iss, aud, scope, a lifetime ≤ 1 h. */
  private jwtBearer(assertion: string): [number, Record<string, unknown>] {
    const account = this.options.serviceAccount;
    const [header, payload, signature] = assertion.split('.');
    if (!account || !header || !payload || !signature) return [400, { error: 'invalid_request', error_description: 'no assertion' }];
    const headerJson = JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: string };
    const signed = verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), account.publicKey, Buffer.from(signature, 'base64url'));
    if (headerJson.alg !== 'RS256' || !signed) return [400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' }];
    const c = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const now = Date.now() / 1000;
    const iat = Number(c.iat);
    const exp = Number(c.exp);
    if (c.iss !== account.clientEmail || c.aud !== this.tokenUrl || !SCOPES.jwt!.includes(String(c.scope)) || typeof c.sub !== 'string') {
      return [400, { error: 'invalid_grant', error_description: 'Invalid JWT claims.' }];
    }
    if (!(exp - iat <= 3600 && iat <= now + 60 && exp > now)) {
      return [400, { error: 'invalid_grant', error_description: 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.' }];
    }
    return [200, this.issue({ user: c.sub, clientId: account.clientEmail, scope: String(c.scope) })];
  }

  /** What Microsoft checks of a certificate's client assertion (RFC 7523): x5t, signature, aud, iss = sub = client, ≤ 10 min. */
  private clientAssertionRefusal(clientId: string, p: Record<string, string>): string | null {
    const cert = this.options.certificates?.[clientId];
    if (!cert) return 'AADSTS700027: no certificate registered for this client';
    if (p.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return 'AADSTS700023: wrong client_assertion_type';
    const [header, payload, signature] = (p.client_assertion ?? '').split('.');
    if (!header || !payload || !signature) return 'AADSTS700025: malformed assertion';
    const h = JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: string; x5t?: string };
    if (h.alg !== 'RS256' || h.x5t !== cert.thumbprint) return 'AADSTS700027: the certificate with identifier used to sign the client assertion is not registered';
    if (!verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), cert.publicKey, Buffer.from(signature, 'base64url'))) return 'AADSTS700027: signature validation failed';
    const c = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const now = Date.now() / 1000;
    if (c.aud !== this.tokenUrl || c.iss !== clientId || c.sub !== clientId || typeof c.jti !== 'string') return 'AADSTS50027: invalid claims';
    if (!(Number(c.exp) > now && Number(c.exp) - Number(c.nbf) <= 600)) return 'AADSTS700024: assertion is not within its valid time range';
    return null;
  }

  private issue(grantee: Grantee): Record<string, unknown> {
    const token = `ya29.fake-${randomBytes(12).toString('hex')}`;
    const expiresIn = this.options.expiresIn ?? 3600;
    this.accessTokens.set(token, { user: grantee.user, clientId: grantee.clientId, scope: grantee.scope, expiresAt: Date.now() + expiresIn * 1000 });
    return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, scope: grantee.scope };
  }

  private newRefreshToken(grantee: Grantee): string {
    const token = `1//fake-refresh-${randomBytes(12).toString('hex')}`;
    this.refreshTokens.set(token, { user: grantee.user, clientId: grantee.clientId, scope: grantee.scope });
    return token;
  }
}

let keyPair: { publicKey: string; privateKey: string } | undefined;

/** A service account's key pair, made once per test process (RSA generation is slow on a Pi). */
export function serviceAccountKeyPair(): { publicKey: string; privateKey: string } {
  keyPair ??= generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return keyPair;
}

/** The JSON key file Google hands out, as relaybox reads it. */
export function serviceAccountKeyJson(clientEmail: string, tokenUri: string): string {
  return JSON.stringify({ type: 'service_account', client_email: clientEmail, private_key: serviceAccountKeyPair().privateKey, token_uri: tokenUri });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
