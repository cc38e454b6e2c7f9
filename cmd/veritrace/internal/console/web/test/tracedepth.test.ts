// The deepest GetTrace answer the server sends decodes with protobuf-es's
// default recursion limit (100 message levels), in binary and in JSON.

import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { type Value } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { GetTraceResponseSchema, type SpanNode, SpanNodeSchema } from "../src/gen/veritrace/v1/audit_pb";
import { SpanSchema } from "../src/gen/veritrace/v1/span_pb";

/** MaxTraceDepth of cmd/veritrace/internal/rpc/tracetree.go. */
const maxTraceDepth = 32;
/** bundle.MaxValueDepth: how deep the server lets attribute values nest. */
const maxValueDepth = 32;

describe("GetTrace at the nesting cap", () => {
  it("decodes a chain of the deepest nesting, the deepest span holding the deepest attribute", () => {
    let v: Value = { $typeName: "google.protobuf.Value", kind: { case: "stringValue", value: "leaf" } } as Value;
    for (let i = 1; i < maxValueDepth; i++) {
      v = { $typeName: "google.protobuf.Value", kind: { case: "structValue", value: { $typeName: "google.protobuf.Struct", fields: { k: v } } } } as Value;
    }
    let node: SpanNode = create(SpanNodeSchema, { span: create(SpanSchema, { name: "deepest", attributes: { a: v }, startTime: { seconds: 1n, nanos: 0 } }) });
    for (let d = 1; d < maxTraceDepth; d++) {
      node = create(SpanNodeSchema, { span: create(SpanSchema, { name: `depth ${maxTraceDepth - d}` }), children: [node] });
    }
    const resp = create(GetTraceResponseSchema, { roots: [node] });
    expect(() => fromBinary(GetTraceResponseSchema, toBinary(GetTraceResponseSchema, resp))).not.toThrow();
    expect(() => fromJson(GetTraceResponseSchema, toJson(GetTraceResponseSchema, resp))).not.toThrow();
  });
});
