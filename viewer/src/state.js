// Pending (unsaved) edits of one slide with undo/redo, kept in localStorage so a reload loses nothing.
//
// changes: id -> {op: "create"|"update"|"delete", record (create/update: the new full record),
// base (update/delete: the saved record it replaces)}. An action is a list of [id, before, after]
// change entries; undo puts every "before" back.

const VERSION = 1;

export function storageKey(repo, image, user) {
  return `exact.edits.v${VERSION}:${user || "-"}:${repo}:${image}`;
}

// Each tab keeps its edits under its own key (a tab id in sessionStorage survives a reload), so two
// tabs never overwrite each other's; a tab that finds the edits of a closed tab (no heartbeat for
// ORPHAN_MS) takes them over, so closing a tab loses nothing either.
const HEARTBEAT_MS = 2000;
const ORPHAN_MS = 8000;

function tabId() {
  let id = sessionStorage.getItem("exact.tab");
  if (!id) {
    id = Math.random().toString(36).slice(2) + Date.now().toString(36);
    sessionStorage.setItem("exact.tab", id);
  }
  return id;
}

function orphans(prefix, own) {
  const out = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (!k || !k.startsWith(prefix + "#") || k === own) continue;
    try {
      const s = JSON.parse(localStorage.getItem(k));
      if (!s.seen || Date.now() - s.seen > ORPHAN_MS) out.push([k, s]);
    } catch { /* not ours */ }
  }
  return out;
}

export function createEditState({ key: slideKey, base, onChange }) {
  const key = `${slideKey}#${tabId()}`;
  let changes = new Map();
  let undo = [];
  let redo = [];
  let baseCommit = base;
  let restored = false;

  try {
    const raw = localStorage.getItem(key);
    if (raw) {
      const s = JSON.parse(raw);
      changes = new Map(s.changes);
      undo = s.undo || [];
      redo = s.redo || [];
      baseCommit = s.base || base;
    }
    for (const [k, s] of orphans(slideKey, key)) {
      for (const [id, c] of s.changes) if (!changes.has(id)) changes.set(id, c);
      if (!raw) baseCommit = s.base || baseCommit;
      localStorage.removeItem(k);
    }
    restored = changes.size > 0;
  } catch (e) {
    console.error("cannot read the saved edits:", e);
  }

  function persist() {
    try {
      if (!changes.size && !undo.length && !redo.length) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify({ base: baseCommit, changes: [...changes], undo, redo, seen: Date.now() }));
    } catch (e) {
      console.error("cannot keep the edits in localStorage:", e);
    }
  }

  function put(id, entry) {
    if (entry) changes.set(id, entry); else changes.delete(id);
  }

  if (restored) persist();
  setInterval(() => { if (changes.size || undo.length) persist(); }, HEARTBEAT_MS);

  const state = {
    get base() { return baseCommit; },
    restored,
    changes,
    get size() { return changes.size; },
    canUndo: () => undo.length > 0,
    canRedo: () => redo.length > 0,
    get(id) { return changes.get(id); },
    // the record as edited: undefined when untouched, null when deleted
    current(id) {
      const c = changes.get(id);
      if (!c) return undefined;
      return c.op === "delete" ? null : c.record;
    },
    apply(name, entries) {
      const action = { name, entries: entries.map(([id, after]) => [id, changes.get(id) || null, after]) };
      for (const [id, , after] of action.entries) put(id, after);
      undo.push(action);
      redo = [];
      persist();
      onChange({ type: name, ids: action.entries.map((e) => e[0]) });
    },
    undo() {
      const a = undo.pop();
      if (!a) return false;
      for (const [id, before] of [...a.entries].reverse()) put(id, before);
      redo.push(a);
      persist();
      onChange({ type: "undo", ids: a.entries.map((e) => e[0]) });
      return true;
    },
    redo() {
      const a = redo.pop();
      if (!a) return false;
      for (const [id, , after] of a.entries) put(id, after);
      undo.push(a);
      persist();
      onChange({ type: "redo", ids: a.entries.map((e) => e[0]) });
      return true;
    },
    // after a save: nothing pending, the base is the new commit
    reset(newBase, keep = new Map()) {
      changes.clear();
      for (const [id, c] of keep) changes.set(id, c);
      undo = [];
      redo = [];
      baseCommit = newBase;
      persist();
      onChange({ type: "reset", ids: [] });
    },
    rebase(newBase) {
      baseCommit = newBase;
      persist();
    },
    hiddenIds() {
      return [...changes].filter(([, c]) => c.op !== "create").map(([id]) => id);
    },
    body() {
      const create = [], update = [], del = [];
      for (const [id, c] of changes) {
        if (c.op === "delete") del.push(id);
        else {
          const r = { id, label: c.record.label, geometry: c.record.geometry };
          if (c.record.properties) r.properties = c.record.properties;
          if (c.record.plane) r.plane = c.record.plane;
          (c.op === "create" ? create : update).push(r);
        }
      }
      return { create, update, delete: del };
    },
  };
  return state;
}

// A fresh annotation id: UUID version 7 (48-bit ms time, random rest), like the server's.
export function newId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) { b[i] = ms % 256; ms = Math.floor(ms / 256); }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
