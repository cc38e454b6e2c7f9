// Minimal JSON helpers the verifier needs beyond JSON.parse: the raw text
// of a top-level member (as Go's json.RawMessage keeps it) and Go's
// json.Compact (insignificant whitespace removed, nothing else changed).

/** Returns the raw text of member key of the top-level object in text, or undefined. */
export function rawMember(text: string, key: string): string | undefined {
  let i = skipWS(text, 0);
  if (text[i] !== "{") return undefined;
  i = skipWS(text, i + 1);
  let found: string | undefined;
  while (i < text.length && text[i] !== "}") {
    const keyEnd = scanString(text, i);
    const k = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWS(text, keyEnd);
    if (text[i] !== ":") throw new SyntaxError("expected ':'");
    i = skipWS(text, i + 1);
    const end = scanValue(text, i);
    if (k === key) found = text.slice(i, end); // the last duplicate wins, as in Go
    i = skipWS(text, end);
    if (text[i] === ",") i = skipWS(text, i + 1);
  }
  return found;
}

function skipWS(s: string, i: number): number {
  while (i < s.length && (s[i] === " " || s[i] === "\t" || s[i] === "\n" || s[i] === "\r")) i++;
  return i;
}

function scanString(s: string, i: number): number {
  if (s[i] !== '"') throw new SyntaxError("expected a string");
  for (i++; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === '"') return i + 1;
  }
  throw new SyntaxError("unterminated string");
}

function scanValue(s: string, i: number): number {
  if (s[i] === '"') return scanString(s, i);
  if (s[i] === "{" || s[i] === "[") {
    let depth = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '"') {
        i = scanString(s, i) - 1;
      } else if (c === "{" || c === "[") {
        depth++;
      } else if (c === "}" || c === "]") {
        if (--depth === 0) return i + 1;
      }
    }
    throw new SyntaxError("unterminated value");
  }
  let j = i;
  while (j < s.length && !",}] \t\n\r".includes(s[j])) j++;
  return j;
}

/** Go's json.Compact: validates and removes whitespace outside strings. */
export function compact(text: string): string {
  JSON.parse(text); // throws on invalid JSON
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = scanString(text, i);
      out += text.slice(i, end);
      i = end - 1;
    } else if (c !== " " && c !== "\t" && c !== "\n" && c !== "\r") {
      out += c;
    }
  }
  return out;
}
