// The canonical proto JSON of a payload message (docs/FORMAT.md §2.5): byte
// for byte what Go's protojson.Marshal writes with its insignificant white
// space removed, which is what an export writes as an entry's `decoded`
// form and what check 9 of docs/BUNDLE.md compares it with. The Go side is
// audit/bundle/jsonform.go (appendProtoJSON); the vectors written by
// cmd/veritrace/internal/console/vectors_test.go pin this one to it.
//
// protobuf-es's toJsonString is not that text: it writes fields in field
// number order (protojson: declaration order), map and Struct keys in the
// order of the JavaScript object (protojson: sorted, and JavaScript puts
// integer-like keys first), and a double -0 as 0 or not at all. So this
// file writes the text itself, from the message protobuf-es parsed.

import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { toBase64 } from "./bytes";

type Obj = Record<string, unknown>;
type ElemKind = "scalar" | "enum" | "message";

const IMPLICIT = 2; // google.protobuf.FeatureSet.FieldPresence.IMPLICIT

/**
 * The canonical proto JSON of msg, a message of desc that passed the
 * decodability checks (finite Value numbers, Timestamps in range, no
 * unknown fields). Throws on a type it has no canonical form for.
 */
export function protoJSON(desc: DescMessage, msg: Obj): string {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return timestamp(msg);
    case "google.protobuf.Value": {
      const k = (msg.kind ?? {}) as { case?: string; value?: unknown };
      const f = desc.fields.find((x) => x.localName === k.case);
      if (!f) throw new Error("google.protobuf.Value has no kind");
      return singular(f.fieldKind === "message" ? "message" : f.fieldKind === "enum" ? "enum" : "scalar", f, k.value);
    }
    case "google.protobuf.Struct":
      return map(desc.fields[0], msg.fields as Obj);
    case "google.protobuf.ListValue":
      return list(desc.fields[0], msg.values as unknown[]);
    case "google.protobuf.Empty":
      return "{}";
  }
  if (desc.typeName.startsWith("google.protobuf.")) throw new Error(`no canonical JSON for ${desc.typeName}`);
  const parts: string[] = [];
  for (const f of desc.fields) {
    if (!has(msg, f)) continue;
    const v = f.oneof ? (msg[f.oneof.localName] as { value: unknown }).value : msg[f.localName];
    let text: string;
    switch (f.fieldKind) {
      case "list":
        text = list(f, v as unknown[]);
        break;
      case "map":
        text = map(f, v as Obj);
        break;
      default:
        text = singular(f.fieldKind, f, v);
    }
    parts.push(quote(f.jsonName) + ":" + text);
  }
  return "{" + parts.join(",") + "}";
}

/** Whether protojson writes field f of msg: Go's presence, under which a double -0 is set. */
function has(msg: Obj, f: DescField): boolean {
  if (f.oneof) return (msg[f.oneof.localName] as { case?: string } | undefined)?.case === f.localName;
  const v = msg[f.localName];
  switch (f.fieldKind) {
    case "list":
      return (v as unknown[]).length > 0;
    case "map":
      return Object.keys(v as Obj).length > 0;
    case "message":
      return v !== undefined;
  }
  if (f.presence !== IMPLICIT) return v !== undefined;
  if (typeof v === "number") return v !== 0 || Object.is(v, -0);
  if (typeof v === "bigint") return v !== 0n;
  if (typeof v === "string") return v !== "" && (f.fieldKind !== "scalar" || !isInt64(f.scalar) || BigInt(v) !== 0n);
  if (typeof v === "boolean") return v;
  if (v instanceof Uint8Array) return v.length > 0;
  return false;
}

function isInt64(t: ScalarType): boolean {
  return t === ScalarType.INT64 || t === ScalarType.UINT64 || t === ScalarType.SINT64 || t === ScalarType.FIXED64 || t === ScalarType.SFIXED64;
}

/** One value of field f (the field's own, a list element or a map value) of the given kind. */
function singular(kind: ElemKind, f: DescField, v: unknown): string {
  switch (kind) {
    case "message":
      return protoJSON((f as { message: DescMessage }).message, v as Obj);
    case "enum":
      return enumJSON((f as { enum: DescEnum }).enum, v as number);
  }
  const t = (f as { scalar: ScalarType }).scalar;
  switch (t) {
    case ScalarType.STRING:
      return quote(v as string);
    case ScalarType.BOOL:
      return v ? "true" : "false";
    case ScalarType.BYTES:
      return '"' + toBase64(v as Uint8Array) + '"';
    case ScalarType.DOUBLE:
      return double(v as number);
    case ScalarType.FLOAT:
      return float32(v as number);
  }
  if (isInt64(t)) return '"' + BigInt(v as bigint | string).toString() + '"';
  return String(v as number);
}

function enumJSON(e: DescEnum, n: number): string {
  if (e.typeName === "google.protobuf.NullValue") return "null";
  const name = e.value[n]?.name;
  return name === undefined ? String(n) : quote(name);
}

function elemKind(f: DescField): ElemKind {
  if (f.fieldKind === "list") return f.listKind;
  if (f.fieldKind === "map") return f.mapKind;
  return f.fieldKind === "message" ? "message" : f.fieldKind === "enum" ? "enum" : "scalar";
}

function list(f: DescField, l: unknown[]): string {
  const k = elemKind(f);
  return "[" + l.map((x) => singular(k, f, x)).join(",") + "]";
}

/** A map with its keys in protojson's order: false before true, numbers ascending, strings by code point (UTF-8 byte order). */
function map(f: DescField, m: Obj): string {
  const keys = Object.keys(m);
  const keyType = f.fieldKind === "map" ? f.mapKey : ScalarType.STRING;
  switch (keyType) {
    case ScalarType.STRING:
      keys.sort(cmpCodePoints);
      break;
    case ScalarType.BOOL:
      keys.sort((a, b) => (a === b ? 0 : a === "false" ? -1 : 1));
      break;
    default:
      keys.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
  }
  const k = elemKind(f);
  return "{" + keys.map((key) => quote(key) + ":" + singular(k, f, m[key])).join(",") + "}";
}

/** Compares by code point, as Go compares UTF-8 strings: a surrogate pair sorts after U+E000..U+FFFF. */
function cmpCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** A string quoted as protojson quotes it: `"` and `\` escaped, control characters as \b \f \n \r \t or \u00xx, nothing else. */
export function quote(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i) + "\\";
    switch (c) {
      case 0x22:
        out += '"';
        break;
      case 0x5c:
        out += "\\";
        break;
      case 0x08:
        out += "b";
        break;
      case 0x0c:
        out += "f";
        break;
      case 0x0a:
        out += "n";
        break;
      case 0x0d:
        out += "r";
        break;
      case 0x09:
        out += "t";
        break;
      default:
        out += "u" + c.toString(16).padStart(4, "0");
    }
    start = i + 1;
  }
  return out + s.slice(start) + '"';
}

/**
 * A double as protojson writes it: NaN and the infinities as strings,
 * otherwise the shortest text that reads back the same, in exponent form
 * below 1e-6 and from 1e21 (JavaScript's rule too), and -0 as -0.
 */
function double(n: number): string {
  if (Number.isNaN(n)) return '"NaN"';
  if (n === Infinity) return '"Infinity"';
  if (n === -Infinity) return '"-Infinity"';
  return Object.is(n, -0) ? "-0" : String(n);
}

/** A float (held as the double of a float32) as protojson writes it: the shortest text that reads back as the same float32. */
function float32(n: number): string {
  if (!Number.isFinite(n) || n === 0) return double(n);
  for (let p = 1; p < 9; p++) {
    const x = Number(n.toPrecision(p));
    if (Math.fround(x) === n) return double(x);
  }
  return double(Number(n.toPrecision(9)));
}

/** A google.protobuf.Timestamp in range: RFC 3339 in UTC with 0, 3, 6 or 9 digits of fraction. */
function timestamp(msg: Obj): string {
  const sec = BigInt((msg.seconds as bigint | undefined) ?? 0n);
  let nanos = (msg.nanos as number | undefined) ?? 0;
  let s = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  if (nanos !== 0) {
    let digits = 9;
    for (let i = 0; i < 2 && nanos % 1000 === 0; i++) {
      nanos /= 1000;
      digits -= 3;
    }
    s += "." + String(nanos).padStart(digits, "0");
  }
  return '"' + s + 'Z"';
}
