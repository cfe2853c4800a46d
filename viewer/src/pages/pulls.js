// Pull request list (/{repo}/pulls?state=open): number, title, author, source → target, approvals (valid
// at the head against the number required, stale ones named), the checks of the head and the state,
// filtered by state (open, draft, merged, closed, all).
import { api } from "../api.js";
import { h } from "../dom.js";

const STATES = ["open", "draft", "merged", "closed", "all"];

function approvalsText(pr) {
  const a = pr.approvals || { valid: [], stale: [], changes_requested: [] };
  let t = `${a.valid.length}/${pr.required_approvals}`;
  if (a.valid.length) t += ` (${a.valid.join(", ")})`;
  if (a.stale.length) t += ` · stale: ${a.stale.join(", ")}`;
  if (a.changes_requested.length) t += ` · changes requested: ${a.changes_requested.join(", ")}`;
  return t;
}

export async function renderPulls(app, p) {
  const repo = p.repo;
  const params = new URLSearchParams(location.search);
  const state = STATES.includes(params.get("state")) ? params.get("state") : "open";
  const { pulls } = await api.pulls(repo, { state });
  app.append(h("h1", {}, h("a", { href: `/${encodeURIComponent(repo)}` }, repo), " · pull requests"));
  const sel = h("select", { id: "state-filter", "aria-label": "state" },
    STATES.map((s) => h("option", { value: s, selected: s === state }, s)));
  sel.addEventListener("change", () => {
    const q = new URLSearchParams(location.search);
    q.set("state", sel.value);
    location.search = q.toString();
  });
  app.append(h("p", {}, "Show ", sel));
  if (!pulls.length) {
    app.append(h("p.empty", { id: "no-pulls" }, `No ${state === "all" ? "" : state + " "}pull requests.`));
    return;
  }
  app.append(h("table.pulls", { id: "pull-list" },
    h("tr", {}, ["#", "title", "author", "branches", "approvals", "checks", "state"].map((t) => h("th", {}, t))),
    pulls.map((pr) => h("tr", { dataset: { number: pr.number, state: pr.state } },
      h("td", {}, `#${pr.number}`),
      h("td.title", {}, h("a", { href: `/${encodeURIComponent(repo)}/pull/${pr.number}` }, pr.title)),
      h("td.author", {}, pr.author),
      h("td.branches", {}, `${pr.source} → ${pr.target}`),
      h("td.approvals", { dataset: { valid: pr.approvals.valid.length, stale: pr.approvals.stale.length } }, approvalsText(pr)),
      h("td.checks", { dataset: { checks: pr.checks || "" } }, pr.checks || "—"),
      h("td.state", {}, pr.state)))));
}
