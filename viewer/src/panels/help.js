// The help overlay (?): every tool, label and command key.
import { h } from "../dom.js";

export function createHelp(ed, tools) {
  const rows = [
    ...tools.filter((t) => ed.ctx.canEdit || ["navigate", "select"].includes(t.name)).map((t) => [`Shift+${t.key}`, t.title]),
    ...ed.labels.filter((l) => l.key).map((l) => [l.key, `label ${l.name} (current label; with a selection: assign it)`]),
    ["Delete", "delete the selection"], ["Ctrl+Z", "undo"], ["Ctrl+Shift+Z / Ctrl+Y", "redo"], ["Ctrl+S", "save (commit)"],
    ["Enter", "close the polygon / finish the line"], ["Escape", "cancel the shape; clear the selection"], ["[ ]", "brush size"], ["?", "this help"],
  ];
  const el = h("div.help", { id: "help", hidden: true, role: "dialog", "aria-label": "keyboard shortcuts" },
    h("h2", {}, "Keys"), h("table", {}, rows.map(([k, what]) => h("tr", {}, h("td", {}, h("kbd", {}, k)), h("td", {}, what)))),
    h("p", {}, "Press ? or Escape to close."));
  return {
    el,
    toggle(on = el.hidden) { el.hidden = !on; },
    get open() { return !el.hidden; },
  };
}
