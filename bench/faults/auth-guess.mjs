// Password guessing, as issue 12 found it: 200 wrong SMTP AUTH passwords from one address (a new
// connection whenever the server hangs up), then the right one from the same address and from
// another; then wrong bearer tokens against the console for 5 s, then the right token.
//   node bench/faults/auth-guess.mjs        (RELAYBOX_CLI=<other>/dist/cli.js for the before)
import { hashPassword, startRelay } from './relay.mjs';
import { plain, Talk } from './smtp.mjs';

const GUESSES = 200;
const TOKEN = 'bench-admin-token-0123456789';
const hash = await hashPassword('right-password');
const relay = await startRelay({
  adminToken: TOKEN,
  smtpExtra: [`auth: { required: true, users: [{ username: scanner, password_hash: "${hash}" }] }`],
});

const tally = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
const short = (reply) => reply.slice(0, 9).trim();

async function authOnce(talkRef, password, localAddress) {
  if (!talkRef.talk || talkRef.talk.closed) {
    const { talk, greeting } = await Talk.open(relay.port, localAddress);
    if (!greeting.startsWith('220')) {
      talk.close();
      return `at connect: ${short(greeting)}`;
    }
    talkRef.talk = talk;
    const ehlo = await talk.cmd('EHLO bench');
    if (!ehlo.startsWith('250')) return `at EHLO: ${short(ehlo)}`;
  }
  const reply = short(await talkRef.talk.cmd(`AUTH PLAIN ${plain('scanner', password)}`));
  if (reply.startsWith('421')) talkRef.talk.close(); // the server hangs up after a 421
  return reply;
}

try {
  const replies = new Map();
  const ref = {};
  const started = Date.now();
  for (let i = 0; i < GUESSES; i++) tally(replies, await authOnce(ref, `wrong-${i}`, '127.0.0.1'));
  const seconds = (Date.now() - started) / 1000;
  ref.talk?.close();
  const right = await authOnce({}, 'right-password', '127.0.0.1');
  const other = await authOnce({}, 'right-password', '127.0.0.2');

  const base = `http://127.0.0.1:${relay.httpPort}/api/status`;
  const statuses = new Map();
  let retryAfter = null;
  const until = Date.now() + 5000;
  const tokenStart = Date.now();
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; Date.now() < until; i++) {
        const res = await fetch(base, { headers: { Authorization: `Bearer guess-${w}-${i}` } });
        await res.arrayBuffer();
        tally(statuses, res.status);
        retryAfter ??= res.headers.get('retry-after');
      }
    }),
  );
  const tokenSeconds = (Date.now() - tokenStart) / 1000;
  const rightToken = (await fetch(base, { headers: { Authorization: `Bearer ${TOKEN}` } })).status;
  const evaluated = statuses.get(401) ?? 0;

  console.log('| measure | value |\n|---|---|');
  console.log(`| SMTP: ${GUESSES} wrong passwords from 127.0.0.1 | ${seconds.toFixed(1)} s |`);
  for (const [reply, n] of [...replies].sort((a, b) => b[1] - a[1])) console.log(`| SMTP replies: ${reply} | ${n} |`);
  console.log(`| SMTP: right password from 127.0.0.1 right after | ${right} |`);
  console.log(`| SMTP: right password from 127.0.0.2 | ${other} |`);
  console.log(`| HTTP: wrong bearer tokens, 5 s, 8 in parallel | ${[...statuses].map(([s, n]) => `${n}×${s}`).join(', ')} |`);
  console.log(`| HTTP: guesses actually checked (401) per second | ${(evaluated / tokenSeconds).toFixed(1)} |`);
  console.log(`| HTTP: Retry-After seen | ${retryAfter ?? 'none'} |`);
  console.log(`| HTTP: right token right after (from the same address) | ${rightToken} |`);
} finally {
  await relay.stop();
}
