import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { autoCertPaths } from '../config/tlsPaths.js';
import { oauthDir } from '../oauth/files.js';
import type { ArchivedFile, LeftOut } from './manifest.js';

export interface ContentsOptions {
  configPath: string;
  configText: string;
  dataDir: string;
  /** `smtp.tls`: `cert: auto` keeps the pair relaybox made in data_dir/tls. */
  tls: { cert: string; key?: string | undefined };
}

/**
 * What a backup carries besides the spool: the configuration file, the OAuth tokens, the TLS pair
 * relaybox made, and every file the configuration names (`{ file: PATH }` secrets such as the DKIM
 * key, a configured TLS pair) that sits in the configuration's directory or in data_dir. Files
 * elsewhere are left out and named, so that restore only ever writes into those two directories.
 */
export function backupContents(options: ContentsOptions): { files: ArchivedFile[]; leftOut: LeftOut[] } {
  const { configPath, dataDir } = options;
  const configDir = dirname(configPath);
  const files: ArchivedFile[] = [{ entry: `config/${basename(configPath)}`, from: configPath, what: 'configuration' }];
  const leftOut: LeftOut[] = [];
  const add = (file: ArchivedFile) => {
    if (!files.some((f) => f.entry === file.entry)) files.push(file);
  };

  const oauth = oauthDir(dataDir);
  for (const name of existsSync(oauth) ? readdirSync(oauth).sort() : []) {
    // Dot files are the temporary files of a token being written.
    if (!name.startsWith('.') && statSync(join(oauth, name)).isFile()) add({ entry: `data/oauth/${name}`, from: join(oauth, name), what: 'OAuth token' });
  }
  if (options.tls.cert === 'auto') {
    const auto = autoCertPaths(dataDir);
    if (existsSync(auto.cert) && existsSync(auto.key)) {
      add({ entry: 'data/tls/cert.pem', from: auto.cert, what: 'TLS certificate made by relaybox' });
      add({ entry: 'data/tls/key.pem', from: auto.key, what: 'TLS key made by relaybox' });
    }
  }

  for (const named of namedFiles(options)) {
    const inData = inside(dataDir, named.path);
    const inConfig = inside(configDir, named.path);
    if (!existsSync(named.path)) leftOut.push({ from: named.path, key: named.key, why: 'missing' });
    else if (inData) add({ entry: `data/${inData}`, from: named.path, what: named.key });
    else if (inConfig) add({ entry: `config/${inConfig}`, from: named.path, what: named.key });
    else leftOut.push({ from: named.path, key: named.key, why: `outside ${configDir} and ${dataDir}: keep a copy of it yourself` });
  }
  return { files, leftOut };
}

/** The configuration's file references: `{ file: PATH }` anywhere, and a configured TLS pair. */
function namedFiles(options: ContentsOptions): Array<{ key: string; path: string }> {
  const found: Array<{ key: string; path: string }> = [];
  const walk = (value: unknown, key: string) => {
    if (!value || typeof value !== 'object') return;
    const entries = Object.entries(value);
    if (!Array.isArray(value) && entries.length === 1 && entries[0]![0] === 'file' && typeof entries[0]![1] === 'string') {
      found.push({ key, path: resolve(entries[0]![1]) });
      return;
    }
    for (const [k, v] of entries) walk(v, Array.isArray(value) ? `${key}[${k}]` : key ? `${key}.${k}` : k);
  };
  walk(parseYaml(options.configText), '');
  const { cert, key } = options.tls;
  if (cert !== 'auto') found.push({ key: 'smtp.tls.cert', path: resolve(cert) });
  if (cert !== 'auto' && key) found.push({ key: 'smtp.tls.key', path: resolve(key) });
  return found;
}

/** `path` relative to `dir` when it lies inside it (never the spool, which is copied online). */
function inside(dir: string, path: string): string | undefined {
  const rel = relative(dir, path);
  if (!rel || rel.startsWith('..') || isAbsolute(rel) || /^spool\.db(-wal|-shm)?$/.test(rel)) return undefined;
  return rel.split('\\').join('/');
}
