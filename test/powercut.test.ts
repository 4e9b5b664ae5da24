import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';
import { buildShim, checkSpool, HAS_GCC, restoreDurable, sendUntilCut, shimLog, startUnderShim, type Acked } from './powercut/harness.js';

/**
 * A power cut, simulated (test/powercut/shim.c): relaybox runs with a shim that keeps, for each
 * file of its data_dir, the content of its last fsync/fdatasync — what the card holds when the
 * power goes. Devices send from several connections at once; the power goes; the data_dir is
 * replaced by what was synced. Every message answered 250 must be there, whole.
 */
async function cutAndCheck(options: { dir: string; shim: string; clients: number; cut: { afterReplies: number } | { afterMs: number }; env?: Record<string, string> }) {
  const env = { ...options.env, ...('afterReplies' in options.cut ? { POWERCUT_CUT_AFTER_250: String(options.cut.afterReplies) } : {}) };
  const box = await startUnderShim({ dir: options.dir, shim: options.shim, env });
  const acked: Acked[] = [];
  let firstAck!: () => void;
  const first = new Promise<void>((resolve) => (firstAck = resolve));
  const sending = sendUntilCut(box.port, options.clients, (a) => {
    acked.push(a);
    firstAck();
  });
  const { cut } = options;
  if ('afterMs' in cut) {
    await first;
    await new Promise((r) => setTimeout(r, cut.afterMs)); // clients keep sending meanwhile
    box.child.kill('SIGKILL');
  }
  await box.exited;
  await sending;
  const restored = restoreDurable(box);
  const check = checkSpool(box.dataDir, acked);
  const seen = shimLog(box);
  // The test's own output: what happened in this run, for a person reading the log.
  const { repliedIds: _ids, ...counts } = seen;
  console.log(JSON.stringify({ cut, acked: acked.length, inSpool: check.messages, missing: check.missing.length, integrity: check.integrity, restored: restored.files, ...counts }));
  return { box, acked, check, seen };
}

const CLIENTS = 6;
const title = 'a power cut, simulated with an LD_PRELOAD shim';
describe.skipIf(!HAS_GCC)(HAS_GCC ? title : `${title}: SKIPPED, gcc is not installed (apt-get install gcc)`, () => {
  it('every message answered 250 before the cut is in the spool, whole, cut right after a random 250', async () => {
    const dir = tempDir();
    const shim = buildShim(dir);
    const afterReplies = 5 + Math.floor(Math.random() * 40);
    const { acked, check, seen } = await cutAndCheck({ dir, shim, clients: CLIENTS, cut: { afterReplies } });
    expect(seen.cutByShim).toBe(true);
    // The shim saw relaybox's own WAL syncs (libuv's fdatasync) and SQLite's directory sync.
    expect(seen.syncs['fdatasync spool.db-wal']).toBeGreaterThan(0);
    expect(Object.keys(seen.syncs).some((k) => k.endsWith(' dir'))).toBe(true);
    // The K-th 250 went out the instant before the cut (a client may miss it if the dying socket is reset).
    expect(seen.replies).toBe(afterReplies);
    expect(acked.length).toBeGreaterThanOrEqual(afterReplies - 1);
    expect(check.integrity).toBe('ok');
    expect(check.missing.map((a) => a.id)).toEqual([]);
    expect(check.wrong).toEqual([]);
    // The relay itself takes the spool back.
    const list = await runCli(['queue', 'list', '--json', '--config', `${dir}/relaybox.yaml`]);
    expect(list.code).toBe(0);
    const ids = new Set((JSON.parse(list.stdout) as { id: number }[]).map((m) => m.id));
    expect(acked.filter((a) => !ids.has(a.id))).toEqual([]);
    // Every 250 relaybox wrote, as the shim saw it leave, including one the client may have missed.
    expect(seen.repliedIds).toHaveLength(afterReplies);
    expect(seen.repliedIds.filter((id) => !ids.has(id))).toEqual([]);
  }, 120_000);

  it('every message answered 250 before the cut is in the spool, whole, cut at a random moment by kill -9', async () => {
    const dir = tempDir();
    const { acked, check } = await cutAndCheck({ dir, shim: buildShim(dir), clients: 6, cut: { afterMs: 300 + Math.floor(Math.random() * 1500) } });
    expect(acked.length).toBeGreaterThan(0);
    expect(check.integrity).toBe('ok');
    expect(check.missing.map((a) => a.id)).toEqual([]);
    expect(check.wrong).toEqual([]);
  }, 120_000);

  it('can fail: with relaybox’s WAL sync dropped (a relay that answered 250 before syncing), messages answered 250 are lost', async () => {
    const dir = tempDir();
    const { acked, check, seen } = await cutAndCheck({ dir, shim: buildShim(dir), clients: 3, cut: { afterReplies: 10 }, env: { POWERCUT_DROP_READONLY_SYNC: '1' } });
    expect(seen.dropped).toBeGreaterThan(0);
    expect(acked.length).toBeGreaterThan(0);
    expect(check.missing.length).toBeGreaterThan(0);
  }, 120_000);
});
