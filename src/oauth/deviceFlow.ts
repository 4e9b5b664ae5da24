import { TokenError } from './errors.js';
import { postForm, requestToken, type TokenResponse } from './http.js';
import { spokenDuration } from './signInWords.js';

export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  /** Seconds between polls, as the server asked (RFC 8628 §3.2; 5 when it did not say). */
  interval: number;
  expiresAt: number;
  /** How long the code was given to live (expires_in), for "valid for 15 minutes": a clock time would be in the box's zone. */
  lifetimeMs?: number;
  /** The provider's own sentence for the person ("To sign in, use a web browser to open …"). */
  message?: string;
}

/** RFC 8628 §3.1: asks for a user code a person types at verification_uri on any device. */
export async function startDeviceAuthorization(options: { deviceUrl: string; clientId: string; scope: string; now?: number }): Promise<DeviceAuthorization> {
  const body = await postForm(options.deviceUrl, { client_id: options.clientId, scope: options.scope });
  const { device_code, user_code, verification_uri, expires_in, interval, message } = body;
  if (typeof device_code !== 'string' || typeof user_code !== 'string' || typeof verification_uri !== 'string') {
    throw new TokenError('the device authorization endpoint answered without device_code, user_code or verification_uri', 'unavailable');
  }
  const seconds = Number(interval);
  const lifetimeMs = (Number(expires_in) > 0 ? Number(expires_in) : 900) * 1000;
  return {
    deviceCode: device_code,
    userCode: user_code,
    verificationUri: verification_uri,
    interval: Number.isFinite(seconds) && seconds >= 0 ? seconds : 5,
    expiresAt: (options.now ?? Date.now()) + lifetimeMs,
    lifetimeMs,
    ...(typeof message === 'string' ? { message } : {}),
  };
}

const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * RFC 8628 §3.4–3.5: polls the token endpoint every `interval` seconds until the person has
 * approved; `authorization_pending` means keep waiting, `slow_down` adds 5 seconds for good, and
 * a network failure doubles the wait (the endpoint may be overloaded).
 */
export async function pollDeviceToken(options: {
  tokenUrl: string;
  clientId: string;
  device: DeviceAuthorization;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  onWait?: (intervalS: number) => void;
}): Promise<TokenResponse> {
  const sleep = options.sleep ?? sleepMs;
  const now = options.now ?? Date.now;
  let interval = options.device.interval;
  for (;;) {
    if (now() >= options.device.expiresAt) {
      throw new TokenError(`the code expired after ${spokenDuration(options.device.lifetimeMs ?? 900_000)}: run the command again`, 'refused', 'expired_token');
    }
    await sleep(interval * 1000);
    try {
      return await requestToken(options.tokenUrl, {
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
        device_code: options.device.deviceCode,
        client_id: options.clientId,
      });
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      if (err.oauthError === 'authorization_pending') continue;
      if (err.oauthError === 'slow_down') interval += 5;
      else if (err.failure === 'unavailable') interval = Math.max(1, interval) * 2;
      else throw err;
      options.onWait?.(interval);
    }
  }
}
