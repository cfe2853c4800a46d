// The changes of one image between two revisions, loaded page by page from the paged diff endpoint
// (GET .../images/IMG/changes: only what changed is read and sent), with each change's bounds.
import { api } from "./api.js";

export const PAGE = 500;

export function geometryBounds(g) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const walk = (c) => {
    if (typeof c[0] === "number") {
      x0 = Math.min(x0, c[0]); y0 = Math.min(y0, c[1]); x1 = Math.max(x1, c[0]); y1 = Math.max(y1, c[1]);
    } else for (const d of c) walk(d);
  };
  walk(g.coordinates);
  return [x0, y0, x1, y1];
}

function boundsOf(ch) {
  const bs = [ch.old, ch.new].filter(Boolean).map((a) => geometryBounds(a.geometry));
  return [Math.min(...bs.map((b) => b[0])), Math.min(...bs.map((b) => b[1])),
    Math.max(...bs.map((b) => b[2])), Math.max(...bs.map((b) => b[3]))];
}

// loads every page in the background; onPage(summary, changesSoFar) after each one. ``fetchPage(cursor)``
// gives one page (default: the changes of one image between two revisions).
export function loadChanges(repo, image, oldRev, newRev, onPage, fetchPage = null) {
  const get = fetchPage || ((cursor) => api.imageChanges(repo, image, { old: oldRev, new: newRev, limit: PAGE, cursor }));
  const changes = [];
  let summary = null;
  const done = (async () => {
    let cursor;
    for (let guard = 0; guard < 100000; guard++) {
      const page = await get(cursor);
      if (!summary) summary = { total: page.total, counts: page.counts, labels: page.labels, relabels: page.relabels,
        old: page.old, new: page.new };
      for (const ch of page.changes) { ch.bounds = boundsOf(ch); changes.push(ch); }
      onPage(summary, changes);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
  })();
  return { changes, done, summary: () => summary };
}

// The geometric comparison of two revisions sharing no ids (GET .../images/IMG/matches?a=&b=&match=),
// loaded page by page, each entry shaped like a change so the diff view draws it the same way: matched
// as modified (A as the ghost, B outlined), only in A as deleted, only in B as added.
const AS_KIND = { matched: "modified", only_in_a: "deleted", only_in_b: "added" };

export function loadMatches(repo, image, a, b, spec, onPage) {
  const changes = [];
  let summary = null;
  const done = (async () => {
    let cursor;
    for (let guard = 0; guard < 100000; guard++) {
      const page = await api.matches(repo, image, { a, b, match: spec, limit: PAGE, cursor });
      if (!summary) summary = { labels: page.labels, total: page.total, counts: page.counts, match: page.match, old: page.a, new: page.b };
      for (const it of page.items) {
        const ch = { id: (it.a || it.b).id, image, change: AS_KIND[it.status], status: it.status, old: it.a, new: it.b,
          label: { old: it.a ? it.a.label : null, new: it.b ? it.b.label : null }, fields: [], property_only: false,
          score: it.score, by: it.by };
        ch.bounds = boundsOf(ch);
        changes.push(ch);
      }
      onPage(summary, changes);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
  })();
  return { changes, done, summary: () => summary };
}
