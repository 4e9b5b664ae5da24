import { createRequire } from 'node:module';

/** relaybox's version, from package.json (dist/ sits beside it). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
