/**
 * How deeply a JSON text nests, found without parsing it. V8's JSON.parse and JSON.stringify recurse,
 * and a CALL's arguments are parsed here and serialized again on their way out (a signal's payload
 * in a notice, a call forwarded to another node): a client-chosen nesting deep enough to overflow the
 * stack on the way out must be refused on the way in, with an error the client can read.
 */

/** Deeper than any call the protocol defines needs (a user's signal payload included). */
export const MAX_CALL_NESTING = 64;

/** True when `text` opens more than `limit` arrays/objects inside one another (strings skipped). */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return false;
}
