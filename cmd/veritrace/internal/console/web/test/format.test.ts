// Unit tests of what the console prints of the access log.

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { RefusalSummarySchema } from "../src/gen/veritrace/v1/access_pb";
import { refusalSummary, targetParts } from "../src/format";

describe("refusalSummary", () => {
  it("prints every list with the count of what did not fit, targets quoted", () => {
    const at = timestampFromDate(new Date(Date.UTC(2026, 10, 21, 9, 0, 0)));
    const s = create(RefusalSummarySchema, {
      count: 1200n,
      firstTime: at,
      lastTime: at,
      procedures: ["/veritrace.v1.AuditService/ExportBundle"],
      codes: ["permission_denied"],
      tenants: ["globex"],
      peers: ["192.0.2.7"],
      otherPeers: 2,
      keyIds: ["5eed5eed5eed5eed"],
      otherKeyIds: 3,
      targets: ["export subject=ceo,cfo", "entry 1"],
      otherTargets: 9,
    });
    expect(refusalSummary(s)).toBe(
      "1,200 more refused from 2026-11-21T09:00:00Z to 2026-11-21T09:00:00Z; keys 5eed5eed5eed5eed and 3 more; " +
        'targets "export subject=ceo,cfo", "entry 1" and 9 more; procedures AuditService/ExportBundle; codes permission_denied; ' +
        "tenants globex; peers 192.0.2.7 and 2 more",
    );
  });
});

describe("targetParts", () => {
  const p = "0123456789abcdef01234567";
  it("marks the pseudonyms a target names and keeps the rest as recorded", () => {
    expect(targetParts(`query subject=pseudonym:${p} model=gpt-4o`)).toEqual(["query subject=", { field: "subject", pseudonym: p }, " model=gpt-4o"]);
    expect(targetParts(`hold for case CASE-7 session=pseudonym:${p}`)).toEqual(["hold for case CASE-7 session=", { field: "session", pseudonym: p }]);
    expect(targetParts("export subject=pseudonym:none session=pseudonym:unavailable")).toEqual([
      "export subject=",
      { field: "subject", pseudonym: "none" },
      " session=",
      { field: "session", pseudonym: "unavailable" },
    ]);
  });
  it("leaves alone what is not a pseudonym", () => {
    for (const t of ["entry 42", "export subject=customer-7", `query subject=pseudonym:${p}0`, `query subject=pseudonym:${p.toUpperCase()}`, `xsubject=pseudonym:${p}`, ""]) {
      expect(targetParts(t)).toEqual(t ? [t] : []);
    }
  });
});
