// Debian's Postfix as the anchor: a loopback smarthost on 2526 relaying to the sink on 2527, set
// up and torn down by the shared scripts (or the vendored copies in bench/postfix/).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processTree, treeCpuMs, treePss } from './proc.mjs';
import { log, which } from './util.mjs';

export const POSTFIX_PORT = 2526;
export const SINK_PORT = 2527;
const LOGFILE = '/tmp/postfix-bench.log';

function scriptDir() {
  const shared = process.env.RELAYBOX_BENCH_SHARED ?? '/work/shared/bench';
  if (existsSync(join(shared, 'postfix-setup.sh'))) return shared;
  return new URL('../postfix', import.meta.url).pathname;
}

export function postfixMissing() {
  const missing = ['postfix', 'postconf', 'postsuper', 'smtp-source'].filter((c) => !which(c));
  return missing.length ? missing : null;
}

function sh(script, args = []) {
  return execFileSync('sh', [join(scriptDir(), script), ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function masterPid() {
  try {
    return Number(readFileSync('/var/spool/postfix/pid/master.pid', 'utf8').trim());
  } catch {
    return null;
  }
}

export function startPostfix() {
  log(`postfix: setting up 127.0.0.1:${POSTFIX_PORT} → sink 127.0.0.1:${SINK_PORT} (${scriptDir()})`);
  sh('postfix-setup.sh', [String(POSTFIX_PORT), String(SINK_PORT), LOGFILE]);
  const pid = masterPid();
  if (!pid) throw new Error(`postfix did not start; see ${LOGFILE}`);
  clearQueue();
  const version = execFileSync(which('postconf'), ['-h', 'mail_version'], { encoding: 'utf8' }).trim();
  return {
    name: 'postfix',
    version,
    port: POSTFIX_PORT,
    pid,
    spoolDir: '/var/spool/postfix',
    /** All Postfix processes: smtpd, cleanup, qmgr, smtp, trivial-rewrite... */
    pids: () => processTree(pid),
    memory: () => treePss(pid),
    memoryKind: 'PSS, all processes',
    cpuMs: () => treeCpuMs(pid),
    io: () => null,
    clearQueue,
    stop() {
      log('postfix: stopping');
      sh('postfix-stop.sh');
    },
  };
}

/** Deletes whatever an earlier, interrupted run left queued, so every run starts empty. */
export function clearQueue() {
  try {
    execFileSync(which('postsuper'), ['-d', 'ALL'], { stdio: 'ignore', timeout: 30_000 });
  } catch {}
}
