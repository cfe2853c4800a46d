// The tool buttons (each with its key).
import { h } from "../dom.js";

export function createToolbar(ed, tools) {
  const buttons = tools.map((t) => h("button.tool", { type: "button", title: `${t.title} [Shift+${t.key}]`,
    dataset: { tool: t.name }, onclick: () => ed.setTool(t.name) }, t.name, h("kbd", {}, t.key)));
  const el = h("section.toolbar", { id: "toolbar" }, h("h2", {}, "Tools ", h("small", {}, "(? for keys)")), buttons);
  return {
    el,
    update() { for (const b of buttons) b.classList.toggle("active", b.dataset.tool === ed.tool().name); },
  };
}
