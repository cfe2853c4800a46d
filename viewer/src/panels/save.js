// Save: the pending edits as one commit on the working branch (POST /edits with the expected parent).
// On 409 the page fetches the newer commit, keeps what does not conflict and shows what does; nothing
// pending is dropped unless the user says so.
import { api } from "../api.js";
import { h, clear } from "../dom.js";

export function createSavePanel(ed) {
  const { ctx, state } = ed;
  const msg = h("input", { id: "commit-message", placeholder: "Commit message", size: 24, "aria-label": "commit message" });
  const button = h("button", { type: "button", id: "save", onclick: () => save() }, "Save (Ctrl+S)");
  const undo = h("button", { type: "button", id: "undo", onclick: () => ed.undo() }, "Undo");
  const redo = h("button", { type: "button", id: "redo", onclick: () => ed.redo() }, "Redo");
  const pending = h("span", { id: "pending" });
  const result = h("div", { id: "save-result", role: "status" });
  const conflictBox = h("div.conflicts", { id: "conflicts", hidden: true });
  const el = h("section.save", {}, h("h2", {}, "Save"), h("div.row", {}, pending), msg, h("div.row", {}, button, undo, redo),
    result, conflictBox);
  let saving = false;
  let conflicts = new Map(); // id -> {theirs} (annotation at the new tip, null when they deleted it)

  function update() {
    pending.textContent = `${state.size} unsaved edit${state.size === 1 ? "" : "s"} on ${ctx.workBranch}`;
    button.disabled = saving || state.size === 0 || conflicts.size > 0;
    undo.disabled = !state.canUndo();
    redo.disabled = !state.canRedo();
    renderConflicts();
  }

  function renderConflicts() {
    clear(conflictBox);
    for (const id of [...conflicts.keys()]) if (!state.get(id)) conflicts.delete(id);
    conflictBox.hidden = conflicts.size === 0;
    if (!conflicts.size) return;
    conflictBox.append(h("p.error", {}, `${conflicts.size} of your edits conflict with a newer save on ${ctx.workBranch}:`));
    for (const [id, c] of conflicts) {
      const mine = state.get(id);
      const what = mine.op === "delete" ? "you deleted it" : `you changed it (${mine.record.label})`;
      const theirs = c.theirs ? `it was changed there (${c.theirs.label})` : "it was deleted there";
      conflictBox.append(h("div.conflict", { dataset: { id } }, h("code", {}, id.slice(0, 8)), ` ${what}; ${theirs}. `,
        h("button", { type: "button", class: "keep-mine", onclick: () => resolve(id, true) }, "Keep mine"),
        h("button", { type: "button", class: "take-theirs", onclick: () => resolve(id, false) }, "Take theirs")));
    }
  }

  function resolve(id, keepMine) {
    const c = conflicts.get(id);
    conflicts.delete(id);
    const mine = state.get(id);
    if (keepMine) {
      if (!c.theirs) {
        // they deleted it: mine comes back as a new annotation with the same id (or stays deleted)
        state.apply("resolve", [[id, mine.op === "delete" ? null : { op: "create", record: mine.record }]]);
      } else {
        const { id: _i, ...base } = c.theirs;
        state.apply("resolve", [[id, { ...mine, base }]]);
      }
    } else {
      state.apply("resolve", [[id, null]]);
    }
    update();
  }

  function setResult(text, isError = false) {
    result.textContent = text;
    result.classList.toggle("error", isError);
  }

  // bring the pending edits onto `tip`: keep what does not touch what changed between base and tip
  async function rebase(tip) {
    const base = state.base;
    const found = new Map();
    if (base && base !== tip) {
      const d = await api.diffs(ctx.repo, base, tip, ctx.imageName);
      const img = d["exactvc.diff/v1"].images[ctx.imageName];
      for (const ch of (img && img.changes) || []) found.set(ch.id, ch.new);
    }
    conflicts = new Map();
    for (const [id, c] of state.changes) {
      if (c.op === "create" || !found.has(id)) continue;
      const theirs = found.get(id);
      if (c.op === "delete" && theirs === null) { state.apply("already deleted", [[id, null]]); continue; }
      conflicts.set(id, { theirs });
    }
    state.rebase(tip);
    ctx.workTip = tip;
    ctx.commit = tip;
    ctx.rev = ctx.workBranch;
    ctx.layer.setCommit(tip);
    ctx.layer.setHidden(state.hiddenIds());
    if (ed.reloadCounts) ed.reloadCounts().catch(() => {});
    update();
    return conflicts.size;
  }

  async function save(message) {
    if (saving || !ctx.canEdit) return null;
    if (conflicts.size) { setResult("Resolve the conflicts first.", true); return null; }
    if (!state.size) { setResult("Nothing to save."); return null; }
    saving = true;
    update();
    const text = (message ?? msg.value).trim() || `Edit ${ctx.imageName} in the viewer`;
    const body = {
      branch: ctx.workBranch, expected_parent: ctx.workTip || null, image: ctx.imageName, message: text, ...state.body(),
    };
    if (!ctx.workTip) body.from = state.base;
    try {
      const r = await api.edits(ctx.repo, body);
      state.reset(r.commit);
      ctx.workTip = r.commit;
      ctx.commit = r.commit;
      ctx.rev = ctx.workBranch;
      ctx.layer.setCommit(r.commit);
      ctx.layer.setHidden([]);
      msg.value = "";
      setResult(`Saved as ${r.commit.slice(0, 12)} on ${r.branch}.`);
      const u = new URL(location.href);
      u.searchParams.set("rev", ctx.workBranch);
      history.replaceState(null, "", u.toString());
      if (ed.reloadCounts) ed.reloadCounts().catch(() => {});
      ctx.events.emit("save", { commit: r.commit, branch: r.branch, created: r.created });
      return r;
    } catch (e) {
      if (e.status === 409 && e.type !== "nothing_to_commit") {
        const { refs } = await api.refs(ctx.repo);
        const tip = refs[`heads/${ctx.workBranch}`] || null;
        const n = await rebase(tip);
        saving = false;
        if (!n) {
          setResult(`${ctx.workBranch} moved on (another tab or device saved); your edits were re-applied on top.`);
          return save(text);
        }
        setResult(`${ctx.workBranch} moved on: ${n} edit${n === 1 ? "" : "s"} conflict; the rest were re-applied. Nothing was lost.`, true);
        ctx.events.emit("save", { conflict: true, conflicts: [...conflicts.keys()] });
        return null;
      }
      setResult(e.status === 401 ? "Signed out: sign in again to save (your edits are kept)." : `Not saved: ${e.message}`, true);
      return null;
    } finally {
      saving = false;
      update();
    }
  }

  // unsaved edits restored after a reload: bring them onto the branch as it is now
  async function afterRestore() {
    if (ctx.workTip && ctx.workTip !== state.base) {
      const n = await rebase(ctx.workTip);
      if (n) setResult(`${n} restored edit${n === 1 ? "" : "s"} conflict with newer saves.`, true);
    }
  }

  update();
  return { el, update, save, afterRestore, rebase, conflicts: () => [...conflicts.keys()] };
}
