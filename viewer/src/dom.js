// Tiny DOM helpers: h("div.cls", {attrs}, ...children). No framework.
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function formatBytes(n) {
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function showError(where, err) {
  const msg = err && err.message ? err.message : String(err);
  where.append(h("p.error", { role: "alert" }, msg));
}

export const page = () => document.body.dataset;

// Runs a page's body: an error is shown in the page (#page-error), and the page is marked ready
// (body[data-ready]) either way, for tests and scripts waiting on it.
export async function bootPage(app, body) {
  try {
    await body();
  } catch (e) {
    console.error(e);
    app.append(h("p.error", { role: "alert", id: "page-error" }, e.message || String(e)));
  } finally {
    document.body.dataset.ready = "1";
  }
}
