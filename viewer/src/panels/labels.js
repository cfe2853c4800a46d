// The label panel: templates in their sort order with colour, key, default size and counts (saved at
// this commit + pending edits), show/hide per label, the current label, opacity.
import { api } from "../api.js";
import { h, clear } from "../dom.js";

export function createLabelPanel(ed) {
  const { ctx, labels, state } = ed;
  let savedCounts = {};
  const list = h("table.labels", { id: "label-panel" });
  const opacity = h("input", { type: "range", min: 0, max: 100, value: 100, id: "opacity", "aria-label": "annotation opacity",
    oninput: () => { const x = opacity.value / 100; ctx.layer.setOpacity(x); ed.redrawOpacity(x); } });
  const el = h("section", {}, h("h2", {}, "Labels"), list, h("label.row", {}, "Opacity ", opacity));
  ed.redrawOpacity = (x) => { document.querySelector(".edit-overlay")?.style.setProperty("opacity", String(x)); };

  function counts() {
    const c = { ...savedCounts };
    for (const [, ch] of state.changes) {
      if (ch.base) c[ch.base.label] = (c[ch.base.label] || 0) - 1;
      if (ch.record) c[ch.record.label] = (c[ch.record.label] || 0) + 1;
    }
    return c;
  }

  function update() {
    const c = counts();
    clear(list);
    list.append(h("tr", {}, h("th", {}, ""), h("th", {}, "label"), h("th", {}, "key"), h("th", {}, "size"), h("th", {}, "n"), h("th", {}, "show")));
    for (const l of labels) {
      const show = h("input", { type: "checkbox", checked: ed.visible ? ed.visible(l.name) : true, "aria-label": `show ${l.name}`,
        dataset: { label: l.name }, onchange: () => ed.setLabelStyle(l.name, { visible: show.checked }) });
      const current = ed.label() && ed.label().name === l.name;
      list.append(h("tr" + (current ? ".current" : ""), { dataset: { label: l.name } },
        h("td", {}, h("span.swatch", { style: { background: l.color } })),
        h("td", {}, h("button.label-name", { type: "button", onclick: () => ed.setLabel(l) }, l.name), h("small", {}, ` ${l.shape}`)),
        h("td", {}, l.key ? h("kbd", {}, l.key) : ""),
        h("td", {}, l.size ? `${l.size[0]}×${l.size[1]}` : ""),
        h("td.count", { dataset: { label: l.name } }, String(c[l.name] || 0)),
        h("td", {}, show)));
    }
  }

  api.labelCounts(ctx.repo, ctx.imageName, ctx.commit).then((r) => { savedCounts = r.labels; update(); }).catch(() => {});
  ed.reloadCounts = async () => { savedCounts = (await api.labelCounts(ctx.repo, ctx.imageName, ctx.commit)).labels; update(); };
  update();
  return { el, update };
}
