// View controls: revision picker (branches, tags, any commit), frame/z slider, image filters
// (brightness, contrast, gamma), the µm scale bar and the deep link kept in the address bar.
import { h } from "../dom.js";
import { currentView, imageZoom, dziUrl, slideBase } from "../tiles.js";
import { formatLength } from "./selection.js";

const SVGNS = "http://www.w3.org/2000/svg";

function gammaFilter() {
  // an SVG filter the CSS filter chain can reference: gamma on each channel
  const svg = document.createElementNS(SVGNS, "svg");
  svg.setAttribute("width", "0"); svg.setAttribute("height", "0"); svg.setAttribute("class", "filter-defs");
  const f = document.createElementNS(SVGNS, "filter");
  f.setAttribute("id", "exact-gamma");
  const ct = document.createElementNS(SVGNS, "feComponentTransfer");
  const funcs = ["R", "G", "B"].map((c) => {
    const fn = document.createElementNS(SVGNS, `feFunc${c}`);
    fn.setAttribute("type", "gamma"); fn.setAttribute("amplitude", "1"); fn.setAttribute("offset", "0"); fn.setAttribute("exponent", "1");
    ct.appendChild(fn);
    return fn;
  });
  f.appendChild(ct); svg.appendChild(f);
  document.body.appendChild(svg);
  return funcs;
}

export function createViewPanel(ed) {
  const { ctx } = ed;
  const viewer = ctx.viewer;
  const el = h("section.view", {}, h("h2", {}, "View"));

  // revision picker
  const revs = Object.keys(ctx.refs).filter((r) => r.startsWith("heads/") || r.startsWith("tags/")).map((r) => r.replace(/^(heads|tags)\//, ""));
  if (ctx.workBranch && !revs.includes(ctx.workBranch)) revs.unshift(ctx.workBranch);
  const pick = h("select", { id: "rev-picker", "aria-label": "revision" },
    revs.map((r) => h("option", { value: r, selected: r === ctx.rev }, r + (r === ctx.workBranch ? " (your edits)" : ""))),
    revs.includes(ctx.rev) ? null : h("option", { value: ctx.rev, selected: true }, ctx.rev));
  const go = (rev) => {
    const u = new URL(location.href);
    u.searchParams.set("rev", rev);
    location.assign(u.toString());
  };
  pick.addEventListener("change", () => go(pick.value));
  const any = h("input", { id: "rev-input", placeholder: "commit, tag or branch", size: 14 });
  el.append(h("div.row", {}, "Revision ", pick), h("form", { onsubmit: (e) => { e.preventDefault(); if (any.value.trim()) go(any.value.trim()); } }, any, h("button", { type: "submit" }, "Go")),
    h("div.commit", { id: "commit-id" }, "at ", h("code", {}, ctx.commit.slice(0, 12))));

  // frames
  const frames = ctx.image.frames || 1;
  if (frames > 1) {
    const out = h("output", {}, String(ctx.frame));
    const slider = h("input", { type: "range", id: "frame", min: 0, max: frames - 1, value: ctx.frame, "aria-label": "frame / z" });
    slider.addEventListener("change", () => {
      ctx.frame = +slider.value;
      out.textContent = slider.value;
      const view = currentView(viewer);
      viewer.addOnceHandler("open", () => {
        const vp = viewer.viewport;
        vp.zoomTo(vp.imageToViewportZoom(view.zoom), null, true);
        vp.panTo(vp.imageToViewportCoordinates(view.x, view.y), true);
      });
      viewer.open(dziUrl(ctx.image.fingerprint, ctx.frame, slideBase(ctx.image)));
      if (ctx.layer && ctx.layer.setFrame) ctx.layer.setFrame(ctx.frame); // the annotations of this plane
      syncUrl();
    });
    el.append(h("label.row", {}, "Frame ", slider, out));
  }

  // filters
  const funcs = gammaFilter();
  const f = { brightness: 100, contrast: 100, gamma: 100 };
  const apply = () => {
    for (const fn of funcs) fn.setAttribute("exponent", String(100 / f.gamma));
    const css = `brightness(${f.brightness}%) contrast(${f.contrast}%)${f.gamma !== 100 ? " url(#exact-gamma)" : ""}`;
    viewer.drawer.canvas.style.filter = css;
  };
  for (const name of ["brightness", "contrast", "gamma"]) {
    const input = h("input", { type: "range", id: `filter-${name}`, min: 20, max: 300, value: 100, "aria-label": name,
      oninput: () => { f[name] = +input.value; apply(); } });
    el.append(h("label.row", {}, `${name[0].toUpperCase()}${name.slice(1)} `, input));
  }
  el.append(h("button", { type: "button", id: "filter-reset", onclick: () => {
    Object.assign(f, { brightness: 100, contrast: 100, gamma: 100 });
    for (const n of Object.keys(f)) document.getElementById(`filter-${n}`).value = 100;
    apply();
  } }, "Reset filters"));

  // scale bar
  const bar = h("div.scalebar", { id: "scalebar" }, h("div.bar"), h("span.text"));
  viewer.container.appendChild(bar);
  const nice = [1, 2, 5];
  const updateBar = () => {
    const z = imageZoom(viewer); // screen px per image px
    const perPx = ctx.mpp ? ctx.mpp / z : 1 / z; // µm (or image px) per screen px
    let best = null;
    for (let e = -3; e <= 6 && !best; e++) for (const n of nice) {
      const len = n * 10 ** e;
      if (len / perPx >= 80) { best = len; break; }
    }
    best = best || 1;
    bar.firstChild.style.width = `${(best / perPx).toFixed(1)}px`;
    bar.lastChild.textContent = ctx.mpp ? formatLength(best / ctx.mpp, ctx.mpp) : `${best} px`;
  };
  viewer.addHandler("update-viewport", updateBar);
  updateBar();

  // deep link: ?rev=&x=&y=&zoom= (and frame) follow the view
  function syncUrl() {
    const v = currentView(viewer);
    const u = new URL(location.href);
    u.searchParams.set("rev", ctx.rev);
    for (const k of ["x", "y", "zoom"]) u.searchParams.set(k, String(v[k]));
    if (ctx.frame) u.searchParams.set("frame", String(ctx.frame)); else u.searchParams.delete("frame");
    history.replaceState(null, "", u.toString());
  }
  viewer.addHandler("animation-finish", syncUrl);
  return { el };
}
