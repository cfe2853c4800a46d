// Keyboard dispatch: the tool's own keys first (Enter, Backspace, [ ]), then commands, tools
// (Shift+letter) and labels (their key: current label, or assign it to the selection).
export function bindKeys(ed, help, tools) {
  document.addEventListener("keydown", (ev) => {
    const k = ev.key;
    // text fields keep their keys; checkboxes, sliders and buttons do not swallow the shortcuts
    const typing = ev.target instanceof HTMLElement &&
      ev.target.matches("textarea, select, input:not([type]), input[type=text], input[type=search], input[type=password], input[type=number]");
    const ctrl = ev.ctrlKey || ev.metaKey;
    if (ctrl && k.toLowerCase() === "s") { ev.preventDefault(); if (ed.ctx.canEdit) ed.save(); return; }
    if (typing) return;
    if (ctrl && k.toLowerCase() === "z") { ev.preventDefault(); if (ev.shiftKey) ed.redo(); else ed.undo(); return; }
    if (ctrl && k.toLowerCase() === "y") { ev.preventDefault(); ed.redo(); return; }
    if (ctrl || ev.altKey) return;
    if (k === "?") { help.toggle(); ev.preventDefault(); return; }
    if (k === "Escape") {
      if (help.open) help.toggle(false);
      else if (ed.tool().busy && ed.tool().busy()) { ed.tool().cancel(ed); ed.redraw(); }
      else ed.select([]);
      return;
    }
    const t = ed.tool();
    if (t.onKey && t.onKey(ed, k, ev)) { ev.preventDefault(); return; }
    if (k === "Delete" || k === "Backspace") { ed.remove(ed.selection()); ev.preventDefault(); return; }
    const tl = tools.find((x) => x.key === k);
    if (tl) { ed.setTool(tl.name); ev.preventDefault(); return; }
    const label = ed.labels.find((l) => l.key === k);
    if (label) {
      ev.preventDefault();
      if (ed.selection().length && ed.ctx.canEdit) ed.assignLabel(label);
      else ed.setLabel(label);
    }
  });
}
