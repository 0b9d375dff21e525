import { describe, expect, it } from "vitest";
import { call } from "./helpers";

const ORG = "01jd8x6w2m9k3v7q4r5t";
const KEY = "01jd8x7a0b1c2d3e4f5g";

describe("a known path asked with a method it does not take", () => {
  it.each([
    ["PUT", `/v1/orgs/${ORG}/keys`, ["GET", "HEAD", "POST"]],
    ["POST", `/v1/orgs/${ORG}/keys/${KEY}`, ["DELETE", "GET", "HEAD", "PATCH"]],
    ["GET", `/v1/orgs/${ORG}/keys/${KEY}/regenerate`, ["POST"]],
    ["DELETE", `/v1/orgs/${ORG}/policy`, ["GET", "HEAD", "PUT"]],
    ["GET", "/v1/keys/verify", ["POST"]],
    ["DELETE", "/v1/orgs", ["POST"]],
    ["POST", "/healthz", ["GET", "HEAD"]],
    // The path is known whatever the ids in it: a malformed id is no reason for a different answer.
    ["PUT", "/v1/orgs/not-an-id/keys/also-not", ["DELETE", "GET", "HEAD", "PATCH"]],
  ])("%s %s answers 405 with Allow, in the error envelope", async (method, path, allow) => {
    const res = await call(method, path, { key: "kgw_anything", body: method === "GET" || method === "DELETE" ? undefined : {} });
    expect(res.status, res.text).toBe(405);
    expect(res.headers.get("allow")).toBe(allow.join(", "));
    expect(res.body.error).toMatchObject({ code: "METHOD_NOT_ALLOWED", details: { allow } });
    expect(res.body.error.requestId).toBe(res.headers.get("x-request-id"));
  });

  it("an unknown path is still 404", async () => {
    for (const path of ["/v1/nothing", `/v1/orgs/${ORG}/keys/${KEY}/nothing`, "/v1/orgs/", "/nothing"]) {
      const res = await call("GET", path);
      expect(res.status, `${path}: ${res.text}`).toBe(404);
      expect(res.body.error.code).toBe("NOT_FOUND");
    }
  });
});
