/**
 * The console's one script and one stylesheet (and its icon), served from the worker so the pages' CSP can be
 * a `script-src` and `style-src` naming these two files, with no inline code at all. The script only enhances:
 * opening and closing native <dialog>s (which keep focus inside and close on Escape), Copy, clearing the
 * one-time secret however its dialog closes, keeping tooltips inside the viewport, and showing the fields
 * that apply to the chosen kind and role. The stylesheet turns tables into cards below 760 px, so no page
 * scrolls sideways on a phone.
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
// Leaving the one-time secret: the value leaves the page with it (the property and the markup's attribute).
document.querySelectorAll("[data-clear]").forEach((el) => el.addEventListener("click", () => {
  const input = document.getElementById(el.dataset.clear); if (input) { input.value = ""; input.removeAttribute("value"); }
}));
// Escape (or any other way the secret's dialog closes) leaves it exactly as Done does.
document.querySelectorAll("dialog[data-secret]").forEach((dialog) => dialog.addEventListener("close", () => {
  const done = dialog.querySelector("[data-done]"); if (done) done.click();
}));
// A disabled control's reason is shown on hover and focus: kept inside the viewport, never cut off.
const placeTip = (event) => {
  const wrap = event.target.closest && event.target.closest(".disabled-wrap,.tip-wrap");
  const tip = wrap && wrap.querySelector(".tooltip");
  if (!tip) return;
  tip.style.left = "";
  const box = tip.getBoundingClientRect(), room = document.documentElement.clientWidth - 8;
  if (box.right > room) tip.style.left = Math.min(0, room - box.right) + "px";
  if (tip.getBoundingClientRect().left < 8) tip.style.left = (parseFloat(tip.style.left || "0") + 8 - tip.getBoundingClientRect().left) + "px";
};
document.addEventListener("mouseover", placeTip);
document.addEventListener("focusin", placeTip);
// Escape hides a shown reason without moving the pointer or focus; the next visit shows it again.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.querySelectorAll(".disabled-wrap,.tip-wrap").forEach((w) => w.setAttribute("data-dismissed", ""));
});
const undismiss = (event) => { if (event.target.classList && (event.target.classList.contains("disabled-wrap") || event.target.classList.contains("tip-wrap"))) event.target.removeAttribute("data-dismissed"); };
document.addEventListener("mouseenter", undismiss, true);
document.addEventListener("focusin", undismiss);
function sync(form) {
  const kind = form.querySelector("input[name=kind]:checked");
  form.querySelectorAll("[data-kind-section]").forEach((s) => { s.hidden = !!kind && s.dataset.kindSection !== kind.value; });
  const role = form.querySelector("select[name=orgRole]");
  form.querySelectorAll("[data-unless-admin]").forEach((s) => { s.hidden = !!role && role.value === "admin"; });
  const exp = form.querySelector("select[name=expiration]");
  form.querySelectorAll("[data-when-date]").forEach((s) => { s.hidden = !!exp && exp.value !== "date"; });
  form.querySelectorAll("[data-rl-row]").forEach((row) => { const p = row.querySelector("select[name=rlPeriod]"); const o = row.querySelector("[data-when-other]"); if (p && o) o.hidden = p.value !== "other"; });
}
document.querySelectorAll("form[data-key-form],form[data-policy-form]").forEach((form) => { sync(form); form.addEventListener("change", () => sync(form)); });
// A form shown again with errors opens at its first refused field, not at its first field.
document.querySelectorAll("dialog[data-autoopen]").forEach((d) => { d.showModal(); const bad = d.querySelector("[aria-invalid=true]"); if (bad) bad.focus(); });
`;

/** The console's icon: a key, in the accent colour. Served as a file, which the CSP's img-src allows. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#0b5cad"/><circle cx="12" cy="16" r="5.5" fill="none" stroke="#fff" stroke-width="3"/><path d="M17 16h10M23 16v4.5M27 16v3.5" stroke="#fff" stroke-width="3" stroke-linecap="round"/></svg>
`;

export const CONSOLE_CSS = `:root{--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;--accent:#0b5cad;--danger:#b42318;--ok:#1a7f37;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
*,*::before,*::after{box-sizing:border-box}
body{margin:0;overflow-wrap:break-word}main{max-width:1200px;margin:0 auto;padding:1.5rem}
.top{display:flex;gap:.5rem 1.25rem;align-items:center;padding:.75rem 1.5rem;border-bottom:1px solid var(--line);background:var(--soft);flex-wrap:wrap}
.brand{font-weight:700;display:flex;align-items:center;gap:.4rem}.brand img{width:20px;height:20px}
nav{display:flex;gap:.25rem;flex-wrap:wrap}.tab{display:inline-block;padding:.35rem .7rem;border-radius:6px;color:var(--fg);text-decoration:none}
.tab[aria-current=page]{background:#dbe9f8;font-weight:600}.tab[aria-disabled=true]{color:#57606a;cursor:not-allowed}
.who{margin-left:auto;color:var(--muted);font-size:.9rem;min-width:0;overflow-wrap:anywhere}form.inline{display:inline}
:focus-visible{outline:3px solid #e36209;outline-offset:2px}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .6rem}h3{font-size:1rem;margin:0 0 .4rem}
table{width:100%;border-collapse:collapse;font-size:.92rem}th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid var(--line);vertical-align:middle}
th{background:var(--soft);font-weight:600}code{font-family:ui-monospace,Menlo,monospace;font-size:.88em;overflow-wrap:anywhere}
.badge{display:inline-block;padding:.05rem .45rem;margin:.1rem .15rem .1rem 0;border-radius:999px;font-size:.78rem;border:1px solid;max-width:100%;overflow-wrap:anywhere}
.badge.role{background:#ddf4ff;border-color:#54aeff;color:#0a3069}.badge.scope{background:#fbefff;border-color:#c297ff;color:#512a97}
.badge.danger{background:#ffebe9;border-color:#ff8182;color:#82071e}.badge.warn{background:#fff8c5;border-color:#d4a72c;color:#6f4e00}.badge.muted{background:var(--soft);border-color:var(--line);color:var(--muted)}
button,.button{font:inherit;padding:.4rem .8rem;border-radius:6px;border:1px solid var(--line);background:var(--soft);color:var(--fg);cursor:pointer;text-decoration:none;display:inline-block}
button.primary,.button.primary{background:var(--accent);border-color:var(--accent);color:#fff}button.danger{background:var(--danger);border-color:var(--danger);color:#fff}
button.link{border:0;background:none;color:var(--accent);padding:0;text-decoration:underline}
button:disabled,button[aria-disabled=true]{opacity:1;background:#eaeef2;border-color:var(--line);color:#57606a;cursor:not-allowed}
.row-actions{display:flex;gap:.35rem;flex-wrap:nowrap}.row-actions button,.row-actions a{padding:.2rem .5rem;font-size:.85rem;white-space:nowrap}
td.actions-cell{white-space:nowrap;width:1%}.locked-reason{white-space:normal;color:var(--muted);font-size:.8rem;margin:.3rem 0 0;min-width:14rem;max-width:22rem}
.key-name{font-weight:600}.violation{margin:.3rem 0 0;font-size:.8rem;color:#82071e;max-width:28rem}
.toolbar{display:flex;align-items:center;justify-content:space-between;gap:1rem;flex-wrap:wrap}
dialog{white-space:normal;border:1px solid var(--line);border-radius:10px;padding:1.25rem 1.5rem;max-width:36rem;width:calc(100% - 2rem);max-height:calc(100% - 2rem);overflow:auto}dialog::backdrop{background:rgba(27,31,36,.45)}
label{display:block;font-weight:600;margin:.8rem 0 .25rem}label.check{display:flex;gap:.45rem;align-items:center;font-weight:400;margin:.35rem 0}
input[type=text],input[type=password],input[type=number],input[type=date],input[type=datetime-local],input[type=url],textarea,select{font:inherit;padding:.4rem .5rem;border:1px solid #8c959f;border-radius:6px;width:100%;max-width:100%;min-width:0}
fieldset{border:1px solid var(--line);border-radius:8px;margin:.8rem 0;padding:.5rem .9rem;min-width:0}legend{font-weight:600;padding:0 .3rem}
.app-row{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);gap:.5rem;margin:.35rem 0}.hint{color:var(--muted);font-size:.85rem;margin:.25rem 0}
.field-error{color:var(--danger);font-size:.88rem;margin:.25rem 0}ul.line-errors{padding-left:1.2rem}textarea{resize:vertical;font-family:ui-monospace,Menlo,monospace;font-size:.88rem}[aria-invalid=true]{border-color:var(--danger)!important}
.actions{display:flex;justify-content:flex-end;gap:.5rem;margin-top:1.2rem;flex-wrap:wrap}.actions.start{justify-content:flex-start;margin-top:.6rem}
.panel{border:1px solid var(--line);border-radius:8px;padding:.2rem 1rem .9rem;margin:1.2rem 0}.panel h2{margin-top:.8rem}.state-badges{display:inline}
.notice{padding:.6rem .8rem;border-radius:6px;border:1px solid}.notice.ok{background:#dafbe1;border-color:#4ac26b}.notice.error{background:#ffebe9;border-color:#ff8182}
.warning{background:#fff8c5;border:1px solid #d4a72c;padding:.6rem .8rem;border-radius:6px}
.callout{background:#ddf4ff;border:1px solid #54aeff;border-radius:8px;padding:.1rem .8rem;margin:.5rem 0}
.practices{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:.6rem .9rem;margin:.6rem 0;font-size:.88rem}.practices ul{margin:0;padding-left:1.2rem}.practices li{margin:.15rem 0}
.secret-value{font-family:ui-monospace,Menlo,monospace}.copy-row{display:flex;gap:.5rem}.copy-row input{flex:1}
.empty{color:var(--muted);padding:1rem;border:1px dashed var(--line);border-radius:8px;text-align:center}
.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end}.filters>div{min-width:0;flex:1 1 14rem}.filters .actions{flex:0 0 auto;margin-top:0}
.disabled-wrap,.tip-wrap{position:relative;display:inline-block}.tip-wrap{border-radius:999px}
.tooltip{display:none;position:absolute;z-index:5;top:calc(100% + 4px);left:0;width:max-content;max-width:min(22rem,calc(100vw - 2rem));background:#1b1f24;color:#fff;padding:.45rem .6rem;border-radius:6px;font-size:.82rem;font-weight:400;white-space:normal;text-align:left}
.disabled-wrap:hover .tooltip,.disabled-wrap:focus .tooltip,.disabled-wrap:focus-within .tooltip,.tip-wrap:hover .tooltip,.tip-wrap:focus .tooltip{display:block}.disabled-wrap[data-dismissed] .tooltip,.tip-wrap[data-dismissed] .tooltip{display:none}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
dl.details{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.1rem .6rem;margin:.35rem 0 0;font-size:.85rem}dl.details dt{color:var(--muted)}dl.details dd{margin:0;min-width:0}
.rl-row{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr) minmax(0,1fr);gap:0 .5rem;align-items:end}.rl-row label{margin-top:.5rem}.rl-row .rl-error{grid-column:1/-1}
.refill-row{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:0 .5rem}
.hint.indent{margin-left:1.6rem}.pager{display:flex;gap:.75rem;margin:.6rem 0}.signin{max-width:28rem;margin:3rem auto}
@media (max-width:760px){
main{padding:1rem}.top{padding:.6rem 1rem}.who{margin-left:0;flex-basis:100%}
dialog{padding:1rem;width:calc(100% - 1rem);max-width:none}
main table,main thead,main tbody,main tr,main th,main td{display:block;width:auto}
main thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
main tr{border:1px solid var(--line);border-radius:8px;margin:0 0 .75rem;padding:.4rem .2rem}
main td{border:0;padding:.25rem .6rem}main td[data-label]::before{content:attr(data-label);display:block;font-size:.75rem;color:var(--muted);font-weight:600}
td.actions-cell{white-space:normal;width:auto}.row-actions{flex-wrap:wrap}.locked-reason{min-width:0;max-width:none}
.app-row{grid-template-columns:minmax(0,1fr)}.rl-row{grid-template-columns:minmax(0,1fr) minmax(0,1fr)}.rl-row [data-when-other]{grid-column:1/-1}
}
`;
