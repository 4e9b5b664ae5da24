import { randomBytes, scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashPassword, PasswordVerifier, verifyPassword } from '../src/ingress/passwords.js';

describe('hashPassword / verifyPassword', () => {
  it('makes a salted scrypt hash in the documented format that verifies only its password', async () => {
    const hash = await hashPassword('correct horse');
    expect(hash).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await hashPassword('correct horse')).not.toBe(hash);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword('correct horsE', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
  });

  it('reads the cost parameters back from the hash', async () => {
    const salt = randomBytes(16);
    const key = scryptSync('pw', salt, 32, { N: 2 ** 10, r: 4, p: 2 });
    const hash = `$scrypt$ln=10,r=4,p=2$${salt.toString('base64')}$${key.toString('base64')}`;
    expect(await verifyPassword('pw', hash)).toBe(true);
    expect(await verifyPassword('pw', hash.replace('ln=10', 'ln=11'))).toBe(false);
  });

  it('never matches a malformed or absurdly expensive hash', async () => {
    expect(await verifyPassword('pw', '')).toBe(false);
    expect(await verifyPassword('pw', '$scrypt$ln=14,r=8,p=1$abc')).toBe(false);
    expect(await verifyPassword('pw', '$2b$10$abcdefghijklmnopqrstuv')).toBe(false);
    expect(await verifyPassword('pw', `$scrypt$ln=40,r=8,p=1$${'A'.repeat(22)}$${'A'.repeat(43)}`)).toBe(false);
  });
});

describe('PasswordVerifier', () => {
  it('remembers successes only, and a remembered login is fast', async () => {
    const hash = await hashPassword('s3cret');
    const verifier = new PasswordVerifier();
    expect(await verifier.verify('scanner', 'wrong', hash)).toBe(false);
    expect(verifier.size).toBe(0);
    expect(await verifier.verify('scanner', 's3cret', hash)).toBe(true);
    expect(verifier.size).toBe(1);
    const started = performance.now();
    for (let i = 0; i < 20; i++) expect(await verifier.verify('scanner', 's3cret', hash)).toBe(true);
    expect(performance.now() - started).toBeLessThan(50);
    // The remembered success does not carry over to another password or a changed hash.
    expect(await verifier.verify('scanner', 's3cret2', hash)).toBe(false);
    expect(await verifier.verify('scanner', 's3cret', await hashPassword('other'))).toBe(false);
  });

  it('refuses unknown users and stays within its size bound', async () => {
    const verifier = new PasswordVerifier(2);
    expect(await verifier.verify('ghost', 'anything', undefined)).toBe(false);
    const hash = await hashPassword('pw');
    for (const user of ['a', 'b', 'c']) expect(await verifier.verify(user, 'pw', hash)).toBe(true);
    expect(verifier.size).toBe(2);
  });
});
