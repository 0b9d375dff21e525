import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import worker from "../src/index";
import { SESSION_COOKIE } from "../src/console/session";
import { fromThisFile, gatewayFetch } from "./helpers";

/**
 * A browser-like client for the console inside workerd: it keeps the session cookie, sends forms
 * the way a browser does (same-origin headers), and reads the CSRF token from the last page.
 */
export const ORIGIN = "https://gateway.test";

export class ConsoleClient {
  cookie: string | undefined;
  csrf = "";

  /** `bindings` replaces some of the worker's bindings for this request (storage faults). */
  async request(method: string, path: string, init: { form?: Record<string, string | string[]>; headers?: Record<string, string>; bindings?: Partial<Env> } = {}) {
    const headers: Record<string, string> = { "sec-fetch-site": "same-origin", ...init.headers };
    if (this.cookie) headers.cookie = this.cookie;
    let body: string | undefined;
    if (init.form) {
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries(init.form)) for (const v of [value].flat()) params.append(name, v);
      body = params.toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
      if (!("origin" in headers) && headers["sec-fetch-site"] === "same-origin") headers.origin = ORIGIN;
    }
    const request = new Request(`${ORIGIN}${path}`, { method, headers, body, redirect: "manual" });
    let res: Response;
    if (init.bindings) {
      const ctx = createExecutionContext();
      res = await worker.fetch(fromThisFile(request) as Parameters<typeof worker.fetch>[0], { ...env, ...init.bindings }, ctx);
      await waitOnExecutionContext(ctx);
    } else {
      res = await gatewayFetch(request);
    }
    const setCookie = res.headers.get("set-cookie");
    if (setCookie?.startsWith(`${SESSION_COOKIE}=`)) {
      const value = setCookie.split(";")[0]!;
      this.cookie = value === `${SESSION_COOKIE}=` ? undefined : value;
    }
    const html = await res.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(html);
    if (token) this.csrf = token[1]!;
    return { status: res.status, headers: res.headers, html, setCookie, location: res.headers.get("location") };
  }

  get(path: string) {
    return this.request("GET", path);
  }

  /** Posts a console form with this session's CSRF token, as the page's own form would. */
  post(path: string, form: Record<string, string | string[]> = {}, headers: Record<string, string> = {}, bindings?: Partial<Env>) {
    return this.request("POST", path, { form: { _csrf: this.csrf, ...form }, headers, bindings });
  }

  async signIn(key: string) {
    const res = await this.request("POST", "/console/sign-in", { form: { key } });
    if (res.status !== 303) throw new Error(`sign-in failed: ${res.status} ${res.html.slice(0, 300)}`);
    await this.get("/console/keys");
    return res;
  }
}

/** The one-time secret shown in the page's secret dialog, if any. */
export const shownSecret = (html: string) => /id="secret-value"[^>]*value="([^"]+)"/.exec(html)?.[1] ?? /value="([^"]+)"[^>]*id="secret-value"/.exec(html)?.[1];

/** What a page says, tags dropped and entities decoded. */
export const pageText = (html: string) =>
  html
    .replace(/<[^>]+>/g, " ")
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ");
