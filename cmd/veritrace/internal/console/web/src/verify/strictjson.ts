// The strict reading of a bundle's JSON files (docs/BUNDLE.md, "Every JSON
// file of a bundle"), as the Go verifier reads them (audit/bundle,
// entryjson.go and manifestjson.go): one value and nothing after it but
// whitespace; no member named twice in any object; strings without
// unpaired surrogate escapes; numbers kept as their text, so that an
// integer is read exactly when it is one (plain decimal, at most 2^53 - 1)
// and refused otherwise; member names compared exactly. The caller decodes
// the text as UTF-8 with a fatal decoder first.

/** A JSON number, as written. */
export class JNum {
  constructor(readonly raw: string) {}
}

export type JValue = null | boolean | string | JNum | JValue[] | JObject;
/** A JSON object: its members in order, each name once. */
export type JObject = Map<string, JValue>;

export const MAX_JSON_INT = 2n ** 53n - 1n;
const MAX_NESTING = 10000;
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Parses one JSON value strictly; throws SyntaxError. */
export function parseStrict(text: string): JValue {
  let i = 0;
  const fail = (why: string): never => {
    throw new SyntaxError(`offset ${i}: ${why}`);
  };
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const str = (): string => {
    if (text[i] !== '"') fail("want a string");
    const start = i;
    for (i++; i < text.length; i++) {
      if (text[i] === "\\") i++;
      else if (text[i] === '"') {
        i++;
        let s: string;
        try {
          s = JSON.parse(text.slice(start, i)) as string;
        } catch (e) {
          return fail(e instanceof Error ? e.message : "bad string");
        }
        if (LONE_SURROGATE.test(s)) fail("unpaired surrogate escape in a string");
        return s;
      }
    }
    return fail("unterminated string");
  };
  const value = (depth: number): JValue => {
    if (depth > MAX_NESTING) fail("nested too deep");
    const c = text[i];
    if (c === "{") {
      i++;
      const o: JObject = new Map();
      ws();
      if (text[i] === "}") {
        i++;
        return o;
      }
      for (;;) {
        ws();
        const name = str();
        if (o.has(name)) fail(`member ${JSON.stringify(name)} appears twice`);
        ws();
        if (text[i++] !== ":") fail("want ':'");
        ws();
        o.set(name, value(depth + 1));
        ws();
        if (text[i] === "}") {
          i++;
          return o;
        }
        if (text[i++] !== ",") fail("want ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const a: JValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return a;
      }
      for (;;) {
        ws();
        a.push(value(depth + 1));
        ws();
        if (text[i] === "]") {
          i++;
          return a;
        }
        if (text[i++] !== ",") fail("want ',' or ']'");
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = NUMBER.exec(text.slice(i, i + 400));
    if (!m) return fail("want a value");
    i += m[0].length;
    return new JNum(m[0]);
  };
  ws();
  const v = value(0);
  ws();
  if (i !== text.length) fail("data after the JSON value");
  return v;
}

export function isObject(v: JValue | undefined): v is JObject {
  return v instanceof Map;
}

export function objectOf(v: JValue | undefined, what: string): JObject {
  if (!isObject(v)) throw new Error(`${what}: want an object`);
  return v;
}

export function arrayOf(v: JValue | undefined, what: string): JValue[] {
  if (!Array.isArray(v)) throw new Error(`${what}: want an array`);
  return v;
}

export function stringOf(v: JValue | undefined, what: string): string {
  if (typeof v !== "string") throw new Error(`${what}: want a string`);
  return v;
}

/** An unsigned integer in plain decimal, at most 2^53 - 1. */
export function uintOf(v: JValue | undefined, what: string): number {
  if (!(v instanceof JNum) || !/^(0|[1-9][0-9]*)$/.test(v.raw)) throw new Error(`${what}: want an unsigned integer`);
  if (BigInt(v.raw) > MAX_JSON_INT) throw new Error(`${what}: integer ${v.raw} is more than ${MAX_JSON_INT}`);
  return Number(v.raw);
}

/** Refuses members other than allowed and requires those in required. */
export function checkMembers(o: JObject, allowed: readonly string[], required: readonly string[], what: string): void {
  for (const k of o.keys()) if (!allowed.includes(k)) throw new Error(`${what}: unknown field ${JSON.stringify(k)}`);
  for (const k of required) if (!o.has(k)) throw new Error(`${what}: member ${JSON.stringify(k)} is missing`);
}

/**
 * Parses an RFC 3339 time in exactly the form YYYY-MM-DDTHH:MM:SS, then
 * optionally '.' and 1 to 9 digits, then Z or ±HH:MM (upper-case T and Z,
 * a valid date, hours 00-23, minutes and seconds 00-59), as the Go
 * verifier's ParseTime; returns nanoseconds since the Unix epoch.
 */
export function parseTime(s: string): bigint {
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|([+-])([0-9]{2}):([0-9]{2}))$/.exec(s);
  if (!m) throw new Error(`${JSON.stringify(s)} is not an RFC 3339 time`);
  const [year, month, day, hour, minute, sec] = m.slice(1, 7).map(Number);
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if (month < 1 || month > 12 || day < 1 || day > days[month - 1] || hour > 23 || minute > 59 || sec > 59) {
    throw new Error(`${JSON.stringify(s)} is not an RFC 3339 time`);
  }
  let offset = 0;
  if (m[8] !== "Z") {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) throw new Error(`${JSON.stringify(s)} is not an RFC 3339 time`);
    offset = (oh * 3600 + om * 60) * (m[9] === "-" ? -1 : 1);
  }
  // Days since 1970-01-01 of the civil date (proleptic Gregorian).
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  const epochDays = era * 146097 + doe - 719468;
  const seconds = BigInt(epochDays) * 86400n + BigInt(hour * 3600 + minute * 60 + sec - offset);
  return seconds * 1_000_000_000n + BigInt((m[7] ?? "").padEnd(9, "0") || "0");
}
