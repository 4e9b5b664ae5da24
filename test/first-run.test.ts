import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CLI, relayConfig, sendMail, spawnRelay, waitFor } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

/** How long an event may take on a busy 2-core box: a window, not a pace. */
const SLOW = 60_000;
const TREE = resolve(import.meta.dirname, '..');

/** The CLI as a person runs it: from a directory, with their environment (no $RELAYBOX_CONFIG). */
function cli(args: string[], options: { cwd: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.RELAYBOX_CONFIG;
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

describe('first run', () => {
  it('keeps SMTP up when the console port is taken, says why, and prints one line for people', async () => {
    const taken = createServer();
    await new Promise<void>((ready) => taken.listen(0, '127.0.0.1', ready));
    onTestFinished(() => void taken.close());
    const takenPort = (taken.address() as { port: number }).port;
    const [off, on] = await Promise.all([
      spawnRelay(relayConfig(tempDir(), { http: { listen: `127.0.0.1:${takenPort}` } }), tempDir()),
      spawnRelay(relayConfig(tempDir()), tempDir()),
    ]);

    const human = (relay: typeof off) => waitFor(() => relay.lines.find((l) => l.startsWith('relaybox ')), SLOW, 'the start line');
    expect(await human(off)).toBe(`relaybox 0.1.0: SMTP on 127.0.0.1:${off.port}, console off (http.listen 127.0.0.1:${takenPort}: another program is listening there)`);
    expect(off.lines.find((l) => l.includes('"console off:'))).toMatch(/"level":50,.*SMTP and delivery go on/);
    await expect(sendMail(off.port, { to: ['a@example.com'] })).resolves.toMatchObject({ response: expect.stringMatching(/^250/) });
    expect(off.child.exitCode).toBeNull();

    expect(await human(on)).toMatch(new RegExp(`^relaybox 0\\.1\\.0: SMTP on 127\\.0\\.0\\.1:${on.port}, console http://127\\.0\\.0\\.1:\\d+/$`));
  }, 120_000);

  // On a machine with relaybox installed the /etc file wins, as it should: nothing to see here then.
  it.skipIf(existsSync('/etc/relaybox/relaybox.yaml'))('finds the example config in a clone, or lists the files it looked for', async () => {
    const [inClone, elsewhere, missing] = await Promise.all([
      cli(['check-config'], { cwd: TREE }),
      cli(['queue', 'list'], { cwd: tempDir() }),
      cli(['check-config', '--config', 'nope.yaml'], { cwd: tempDir() }),
    ]);
    expect(inClone.stderr).toBe('');
    expect(inClone.stdout).toContain(`spool in ${join(TREE, 'var')}`);
    expect(inClone.code).toBe(0);

    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).not.toMatch(/ENOENT/);
    expect(elsewhere.stderr).toMatch(/^relaybox: no configuration file\. Looked for:\n {2}--config FILE +not given\n {2}\$RELAYBOX_CONFIG +not set\n {2}\/etc\/relaybox\/relaybox\.yaml +no such file\n/);
    expect(elsewhere.stderr).toContain(`${join(TREE, 'config', 'relaybox.example.yaml')}  this clone's, used only from ${TREE}`);
    expect(elsewhere.stderr).toMatch(/Point at one with --config FILE or RELAYBOX_CONFIG=FILE/);

    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('relaybox: bad configuration in nope.yaml:\n  cannot read the file: no such file (point at the right one with --config FILE or RELAYBOX_CONFIG=FILE)\n');
  }, 120_000);

  it('check-config puts each problem in its words, with a guess and the line', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'relaybox.yaml'), 'smtp:\n  listen: "0.0.0.0:25"\n  tls: { mode: startls }\ndelivery: { concurency: 3 }\nupstreams: [{ name: out, type: file, dir: ./out }]\n');
    const result = await cli(['check-config', '--config', 'relaybox.yaml'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'relaybox: bad configuration in relaybox.yaml:\n' +
        '  smtp.listen: write it as a list: ["0.0.0.0:25"] (line 2)\n' +
        '  smtp.tls.mode: expected one of none, starttls, implicit, got "startls" — did you mean starttls? (line 3)\n' +
        '  delivery.concurency: unknown key — did you mean concurrency? (line 4)\n',
    );
  }, 60_000);
});
