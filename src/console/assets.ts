/**
 * The console's one script and one stylesheet, served from the worker so the pages' CSP can be
 * a `script-src` and `style-src` naming these two files, with no inline code at all. The script only enhances:
 * opening and closing native <dialog>s (which keep focus inside and close on Escape), Copy, and
 * showing the fields that apply to the chosen kind and role.
 */

export const CONSOLE_JS = `"use strict";
document.addEventListener("click", (event) => {
  const el = event.target.closest("[data-open],[data-close],[data-copy],[data-add-row]");
  if (!el) return;
  if (el.dataset.open) document.getElementById(el.dataset.open).showModal();
  if (el.hasAttribute("data-close")) el.closest("dialog").close();
  if (el.dataset.copy) {
    const input = document.getElementById(el.dataset.copy);
    const done = () => { const s = document.getElementById(el.dataset.copy + "-copied"); if (s) s.hidden = false; el.textContent = "Copied"; };
    if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, () => { input.select(); });
    else { input.select(); document.execCommand("copy"); done(); }
  }
  if (el.dataset.addRow) {
    const rows = document.getElementById(el.dataset.addRow);
    const row = rows.querySelector(".app-row").cloneNode(true);
    row.querySelectorAll("select").forEach((s) => { s.selectedIndex = 0; });
    rows.appendChild(row);
    row.querySelector("select").focus();
  }
});
// A modal <dialog> makes the page inert, but Tab can still leave it for the browser's own UI: wrap around.
document.addEventListener("keydown", (event) => {
  const dialog = event.key === "Tab" && document.querySelector("dialog[open]");
  if (!dialog) return;
  const focusable = [...dialog.querySelectorAll("a[href],button:not([disabled]),input:not([disabled]):not([type=hidden]),select:not([disabled]),[tabindex]:not([tabindex='-1'])")]
    .filter((el) => el.offsetParent !== null && !(el.type === "radio" && !el.checked));
  const first = focusable[0], last = focusable[focusable.length - 1];
  if (!first) return;
  const inside = dialog.contains(document.activeElement);
  if (event.shiftKey && (document.activeElement === first || !inside)) { event.preventDefault(); last.focus(); }
  else if (!event.shiftKey && (document.activeElement === last || !inside)) { event.preventDefault(); first.focus(); }
});
// Leaving the one-time secret: the value leaves the page with it.
document.querySelectorAll("[data-clear]").forEach((el) => el.addEventListener("click", () => {
  const input = document.getElementById(el.dataset.clear); if (input) input.value = "";
}));
function sync(form) {
  const kind = form.querySelector("input[name=kind]:checked");
  form.querySelectorAll("[data-kind-section]").forEach((s) => { s.hidden = !!kind && s.dataset.kindSection !== kind.value; });
  const role = form.querySelector("select[name=orgRole]");
  form.querySelectorAll("[data-unless-admin]").forEach((s) => { s.hidden = !!role && role.value === "admin"; });
  const exp = form.querySelector("select[name=expiration]");
  form.querySelectorAll("[data-when-date]").forEach((s) => { s.hidden = !!exp && exp.value !== "date"; });
}
document.querySelectorAll("form[data-key-form]").forEach((form) => { sync(form); form.addEventListener("change", () => sync(form)); });
document.querySelectorAll("dialog[data-autoopen]").forEach((d) => d.showModal());
`;

export const CONSOLE_CSS = `:root{--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;--accent:#0b5cad;--danger:#b42318;--ok:#1a7f37;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
body{margin:0}main{max-width:1100px;margin:0 auto;padding:1.5rem}
.top{display:flex;gap:1.25rem;align-items:center;padding:.75rem 1.5rem;border-bottom:1px solid var(--line);background:var(--soft);flex-wrap:wrap}
.brand{font-weight:700}nav{display:flex;gap:.25rem}.tab{padding:.35rem .7rem;border-radius:6px;color:var(--fg);text-decoration:none}
.tab[aria-current=page]{background:#dbe9f8;font-weight:600}.tab[aria-disabled=true]{color:#8c959f;cursor:not-allowed}
.who{margin-left:auto;color:var(--muted);font-size:.9rem}form.inline{display:inline}
:focus-visible{outline:3px solid #e36209;outline-offset:2px}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .6rem}
table{width:100%;border-collapse:collapse;font-size:.92rem}th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid var(--line);vertical-align:middle}
th{background:var(--soft);font-weight:600}code{font-family:ui-monospace,Menlo,monospace;font-size:.88em}
.badge{display:inline-block;padding:.05rem .45rem;margin:.1rem .15rem .1rem 0;border-radius:999px;font-size:.78rem;border:1px solid}
.badge.role{background:#ddf4ff;border-color:#54aeff;color:#0a3069}.badge.scope{background:#fbefff;border-color:#c297ff;color:#512a97}
.badge.danger{background:#ffebe9;border-color:#ff8182;color:#82071e}.badge.muted{background:var(--soft);border-color:var(--line);color:var(--muted)}
button,.button{font:inherit;padding:.4rem .8rem;border-radius:6px;border:1px solid var(--line);background:var(--soft);color:var(--fg);cursor:pointer;text-decoration:none;display:inline-block}
button.primary,.button.primary{background:var(--accent);border-color:var(--accent);color:#fff}button.danger{background:var(--danger);border-color:var(--danger);color:#fff}
button.link{border:0;background:none;color:var(--accent);padding:0;text-decoration:underline}button:disabled{opacity:.55;cursor:not-allowed}
.row-actions{display:flex;gap:.35rem;flex-wrap:wrap}.row-actions button,.row-actions a{padding:.2rem .5rem;font-size:.85rem}
.toolbar{display:flex;align-items:center;justify-content:space-between;gap:1rem}
dialog{border:1px solid var(--line);border-radius:10px;padding:1.25rem 1.5rem;max-width:36rem;width:calc(100% - 2rem)}dialog::backdrop{background:rgba(27,31,36,.45)}
label{display:block;font-weight:600;margin:.8rem 0 .25rem}label.check{display:flex;gap:.45rem;align-items:center;font-weight:400;margin:.35rem 0}
input[type=text],input[type=password],input[type=number],input[type=date],select{font:inherit;padding:.4rem .5rem;border:1px solid #8c959f;border-radius:6px;width:100%;box-sizing:border-box}
fieldset{border:1px solid var(--line);border-radius:8px;margin:.8rem 0;padding:.5rem .9rem}legend{font-weight:600;padding:0 .3rem}
.app-row{display:grid;grid-template-columns:2fr 1fr;gap:.5rem;margin:.35rem 0}.hint{color:var(--muted);font-size:.85rem;margin:.25rem 0}
.field-error{color:var(--danger);font-size:.88rem;margin:.25rem 0}[aria-invalid=true]{border-color:var(--danger)!important}
.actions{display:flex;justify-content:flex-end;gap:.5rem;margin-top:1.2rem}
.notice{padding:.6rem .8rem;border-radius:6px;border:1px solid}.notice.ok{background:#dafbe1;border-color:#4ac26b}.notice.error{background:#ffebe9;border-color:#ff8182}
.warning{background:#fff8c5;border:1px solid #d4a72c;padding:.6rem .8rem;border-radius:6px}
.secret-value{font-family:ui-monospace,Menlo,monospace}.copy-row{display:flex;gap:.5rem}
.empty{color:var(--muted);padding:1rem;border:1px dashed var(--line);border-radius:8px;text-align:center}
.disabled-wrap{position:relative;display:inline-block}.tooltip{visibility:hidden;position:absolute;z-index:5;top:110%;left:0;width:22rem;background:#1b1f24;color:#fff;padding:.45rem .6rem;border-radius:6px;font-size:.82rem;font-weight:400}
.disabled-wrap:hover .tooltip,.disabled-wrap:focus .tooltip{visibility:visible}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.pager{display:flex;gap:.75rem;margin:.6rem 0}.signin{max-width:28rem;margin:3rem auto}
`;
