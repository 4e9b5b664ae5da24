import { z } from 'zod';
import { hostPort } from './fields.js';
import { formatHostPort, isLoopbackHost } from './net.js';
import { secret } from './secret.js';

/**
 * `http:` — the web console, HTTP API and /metrics. On by default on 127.0.0.1:8025 (SPEC's
 * embedded default); `enabled: false` turns it off on a box that wants no HTTP port at all.
 * Beyond loopback an admin_token is required: the API can send mail and drop messages.
 */
export const http = z
  .strictObject({
    enabled: z.boolean().default(true),
    listen: hostPort.prefault('127.0.0.1:8025'),
    admin_token: secret.prefault(''),
  })
  .superRefine((section, ctx) => {
    if (!section.enabled || section.admin_token !== '' || isLoopbackHost(section.listen.host)) return;
    ctx.addIssue({
      code: 'custom',
      path: ['admin_token'],
      message: `required when http.listen (${formatHostPort(section.listen)}) is beyond loopback: anyone on the network could read the log, send and drop mail`,
    });
  });

export type HttpConfig = z.output<typeof http>;
