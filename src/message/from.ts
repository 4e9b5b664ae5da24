import addressparser from 'nodemailer/lib/addressparser';
import { encodeWords } from 'nodemailer/lib/mime-funcs';
import { field, renamed, valueOf, type Field } from './fields.js';
import { displayName, isAddrSpec, mailboxCount, unquoted } from './mailbox.js';

export interface FromContext {
  /** relaybox's hostname: `relaybox@hostname` is the From of last resort (an empty MAIL FROM). */
  hostname: string;
  /** The envelope sender as it goes upstream (after `smtp.rewrite.envelope_from`). */
  envelopeFrom: string;
  /** `smtp.rewrite.header_from`; '' leaves the device's From alone. */
  headerFrom: string;
}

interface Repair {
  mailbox: string;
  /** False when the device's From held no address of its own and a stand-in was used. */
  ownAddress: boolean;
  note: string;
}

/**
 * Gives the message exactly one From holding one valid mailbox (RFC 5322 §3.6.2; Gmail refuses
 * anything else). A From that needs a change is kept as written in X-Original-From.
 */
export function fixFrom(fields: Field[], ctx: FromContext, changed: string[]): void {
  if (ctx.headerFrom) return rewriteFrom(fields, ctx.headerFrom, changed);
  const index = fields.findIndex((f) => f.key === 'from');
  const standIn = ctx.envelopeFrom || `relaybox@${ctx.hostname}`;
  if (index === -1) {
    fields.push(field('From', standIn));
    changed.push('added From');
    return;
  }
  const device = fields[index]!;
  // Several authors are valid with a Sender that names the one who sent it (§3.6.2).
  const sender = fields.find((f) => f.key === 'sender');
  const repair = repairedFrom(valueOf(device), { standIn, severalAllowed: sender !== undefined && mailboxCount(valueOf(sender)) === 1 });
  if (!repair) return;
  const original = valueOf(device) === '' ? [] : [renamed('X-Original-From', device)];
  fields.splice(index, 1, field('From', repair.mailbox), ...original);
  changed.push(repair.note);
}

/** `smtp.rewrite.header_from`: the device's From goes to Reply-To, so that replies reach it. */
function rewriteFrom(fields: Field[], headerFrom: string, changed: string[]): void {
  const index = fields.findIndex((f) => f.key === 'from');
  const wanted = field('From', formatMailbox(headerFrom));
  if (index === -1) {
    fields.push(wanted);
    changed.push('added From (header_from)');
    return;
  }
  const device = fields[index]!;
  if (addressOf(valueOf(device)) === addressOf(headerFrom)) return;
  fields[index] = wanted;
  // Reply-To takes a list, so only a From without any address of its own has nothing to give.
  const repair = repairedFrom(valueOf(device), { standIn: '', severalAllowed: true });
  if (fields.some((f) => f.key === 'reply-to') || repair?.ownAddress === false) {
    changed.push('From rewritten (header_from)');
  } else {
    fields.splice(index + 1, 0, repair ? field('Reply-To', repair.mailbox) : renamed('Reply-To', device));
    changed.push('From rewritten (header_from), the device From kept in Reply-To');
  }
}

/**
 * The one valid mailbox a device's From value stands for, or null when it already is valid.
 * With exactly one address in it, that address stays and the rest of the text is its name
 * (`Scanner, 2F <a@b.example>` → `"Scanner, 2F" <a@b.example>`); with several, the first; with
 * none, `standIn` takes the device's text as its name (`MFP-3F` → `"MFP-3F" <standIn>`).
 */
export function repairedFrom(value: string, options: { standIn: string; severalAllowed: boolean }): Repair | null {
  const count = mailboxCount(value);
  if (count === 1 || (count !== null && options.severalAllowed)) return null;
  const found = addressparser(value, { flatten: true }).filter((a) => isAddrSpec(a.address));
  if (found.length > 1) {
    const first = found[0]!;
    return { mailbox: mailbox(first.name, first.address), ownAddress: true, note: 'From had several mailboxes: the first kept' };
  }
  if (found.length === 1) {
    const { address, name } = found[0]!;
    const rest = value.includes(`<${address}>`) ? value.replace(`<${address}>`, ' ') : value.includes(address) ? value.replace(address, ' ') : name;
    return { mailbox: mailbox(unquoted(rest), address), ownAddress: true, note: 'From made one valid mailbox, its text kept as the name' };
  }
  const note = value === '' ? 'From was empty: an address put in' : 'From had no address: one added, its text kept as the name';
  return { mailbox: mailbox(unquoted(value), options.standIn), ownAddress: false, note };
}

function mailbox(name: string, address: string): string {
  return /[^ \t]/.test(name) ? `${displayName(name)} <${address}>` : address;
}

/** `Scanner <scan@example.com>` → `scan@example.com`, lower-cased, for comparing addresses. */
export function addressOf(mailbox: string): string {
  const angle = /<([^<>]*)>\s*$/.exec(mailbox);
  return (angle ? angle[1]! : mailbox.replace(/\([^()]*\)/g, '')).trim().toLowerCase();
}

/** A configured `Name <address>`: a non-ASCII display name is written as RFC 2047 encoded words. */
export function formatMailbox(mailbox: string): string {
  const m = /^(.*?)\s*<([^<>]+)>$/.exec(mailbox.trim());
  if (!m || !/[^\x00-\x7f]/.test(m[1]!)) return mailbox.trim();
  return `${encodeWords(m[1]!.replace(/^"(.*)"$/, '$1'), 'Q', 52)} <${m[2]}>`;
}
