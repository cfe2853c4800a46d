// The pull request's panel on its diff view: title, state, branches, approvals, review buttons, merge,
// and the comments (anchored ones fly to their annotation; a new one is pinned to the selected change).
import { api } from "../api.js";
import { h, clear } from "../dom.js";

export function createPullPanel(side, { repo, pr, session, selected, flyTo, onMerged, conflicts = null }) {
  const status = h("p.pull-status", { id: "pull-status", role: "status" });
  const approvals = h("span", { id: "approvals" });
  const comments = h("ol.comments", { id: "comments" });
  const text = h("textarea", { id: "comment-text", rows: 2, placeholder: "Comment (pinned to the selected change, if any)" });
  const say = (msg, error = false) => { status.textContent = msg; status.classList.toggle("error", error); };
  const canReview = session && session.user && session.user !== pr.author;

  function showApprovals(p) {
    const a = p.approvals || { valid: [], stale: [] };
    approvals.textContent = `${a.valid.length} of ${p.required_approvals} required approvals` +
      (a.valid.length ? ` (${a.valid.join(", ")})` : "") + (a.stale.length ? `; stale: ${a.stale.join(", ")}` : "");
  }
  async function refresh() {
    const p = await api.pull(repo, pr.number);
    showApprovals(p);
    const { comments: cs } = await api.comments(repo, pr.number);
    clear(comments);
    for (const c of cs) {
      const where = c.anchor ? h("a.anchor", { href: "#", dataset: { annotation: c.anchor.annotation },
        onclick: (e) => { e.preventDefault(); flyTo(c.anchor.annotation); } }, `on ${c.anchor.annotation.slice(0, 10)}`) : "";
      const root = c.thread === c.id;
      const toggle = root && session && session.user ? h("button.resolve", { type: "button", dataset: { thread: c.thread },
        onclick: () => act(() => api.resolveThread(repo, pr.number, c.thread, !c.resolved),
          () => (c.resolved ? "Thread reopened." : "Thread resolved.")) }, c.resolved ? "Reopen" : "Resolve") : "";
      comments.append(h(c.resolved ? "li.comment.resolved" : "li.comment", { dataset: { id: c.id, thread: c.thread,
        annotation: c.anchor ? c.anchor.annotation : "", outdated: c.outdated ? "1" : "0", resolved: c.resolved ? "1" : "0" } },
        h("b", {}, c.author), " ", where, c.outdated ? h("span.outdated", {}, " outdated") : "", c.resolved ? " (resolved)" : "",
        " ", toggle, h("div.body", {}, c.body)));
    }
    return p;
  }
  async function act(fn, done) {
    try { const r = await fn(); say(done(r)); await refresh(); return r; } catch (e) { say(e.message, true); return null; }
  }
  const buttons = h("div.pull-actions", {},
    canReview ? h("button", { id: "approve", type: "button", onclick: () => act(() => api.review(repo, pr.number, { kind: "approve" }), () => "Approved.") }, "Approve") : "",
    canReview ? h("button", { id: "request-changes", type: "button", onclick: () => act(() => api.review(repo, pr.number, { kind: "request_changes" }), () => "Changes requested.") }, "Request changes") : "",
    session && session.user ? h("button", { id: "merge", type: "button", onclick: () => act(
      () => api.mergePull(repo, pr.number, conflicts ? { resolutions: conflicts.resolutions() } : {}),
      (r) => { onMerged(r); return `Merged: ${(r.merge_commit || "").slice(0, 12)}`; }) }, "Merge") : "");
  // merging waits for a choice on every conflict with the target
  function mergeState() {
    const b = buttons.querySelector("#merge");
    if (!b) return;
    const left = conflicts ? conflicts.unresolved() : 0;
    b.disabled = left > 0 || pr.state === "merged" || pr.state === "closed";
    b.title = left > 0 ? `${left} conflict${left === 1 ? "" : "s"} to resolve first` : "";
  }
  side.prepend(h("section.pull", { id: "pull" },
    h("h2", {}, `Pull request #${pr.number}`), h("div.title", { id: "pull-title" }, pr.title),
    h("div.meta", {}, h("span.state", { id: "pull-state" }, pr.state), ` · ${pr.author} · ${pr.source} → ${pr.target} · `,
      h("a.all-pulls", { id: "all-pulls", href: `/${encodeURIComponent(repo)}/pulls` }, "all pull requests")),
    h("p", {}, approvals), buttons, status,
    h("h2", {}, "Comments"), comments, text,
    h("button", { id: "comment-send", type: "button", onclick: () => {
      const ch = selected();
      const body = { body: text.value };
      if (ch) { body.annotation = ch.id; body.image = ch.image; }
      act(() => api.comment(repo, pr.number, body), () => { text.value = ""; return "Comment added."; });
    } }, "Comment")));
  mergeState();
  return { refresh, say, mergeState };
}
