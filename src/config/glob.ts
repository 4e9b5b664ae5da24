/**
 * Address globs as routes and allowed_from write them. Apart from the schema (zod) so that the
 * delivery thread, which matches routes on every start, does not load the schema library.
 */

/** `*@sensors.example.com` → a case-insensitive whole-address RegExp; `*` any run, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'is');
}
