/**
 * The keys of a JSON object in the order the text gives them, duplicates included. JSON.parse
 * cannot tell: it keeps the last of duplicate keys, and a JS object enumerates integer-like keys
 * ("0", "12") first, while Python's json keeps text order, which PEFT's first-match
 * `rank_pattern` lookup depends on. Written by hand: a forward scan over text that JSON.parse has
 * already accepted, with no recursion (skipped values are counted through, not parsed).
 */

/** Index just past the JSON string that starts at `i` (a `"`). */
function skipString(text: string, i: number): number {
  for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
  return i + 1;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  return i;
}

/** Index just past the JSON value that starts at `i`. */
function skipValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (; i < text.length; i++) {
      const d = text[i];
      if (d === '"') i = skipString(text, i) - 1;
      else if (d === '{' || d === '[') depth++;
      else if ((d === '}' || d === ']') && --depth === 0) return i + 1;
    }
    return i;
  }
  while (i < text.length && !',}] \n\r\t'.includes(text[i]!)) i++;
  return i;
}

/**
 * Keys, in text order and with duplicates, of the object reached from the top-level object by
 * following `path` (object keys); undefined when the path does not lead to an object.
 * @param text JSON that JSON.parse accepts
 * @param path @default [] (the top-level object)
 */
export function keysInTextOrder(text: string, path: readonly string[] = []): string[] | undefined {
  let i = skipSpace(text, 0);
  for (let depth = 0; ; depth++) {
    if (text[i] !== '{') return undefined;
    const keys: string[] = [];
    let next: number | undefined;
    i = skipSpace(text, i + 1);
    while (text[i] !== '}') {
      const end = skipString(text, i);
      const key = JSON.parse(text.slice(i, end)) as string;
      i = skipSpace(text, skipSpace(text, end) + 1); // past the ':'
      if (depth < path.length && key === path[depth]) next = i; // the last duplicate wins, as in JSON.parse
      keys.push(key);
      i = skipSpace(text, skipValue(text, i));
      if (text[i] === ',') i = skipSpace(text, i + 1);
    }
    if (depth === path.length) return keys;
    if (next === undefined) return undefined;
    i = next;
  }
}

/** The first key that the object at `path` holds twice, or undefined. */
export function firstDuplicateKey(text: string, path: readonly string[] = []): string | undefined {
  const seen = new Set<string>();
  for (const key of keysInTextOrder(text, path) ?? []) {
    if (seen.has(key)) return key;
    seen.add(key);
  }
  return undefined;
}
