// Second opinion: the annotations that still need the caller's verification (GET .../verifications/pending),
// walked one by one: the view flies to each and selects it; Y says yes, X or Shift+N no (each a commit on
// the caller's branch, POST .../annotations/ID/verifications), → skips, ← goes back. Shown only when the
// repository is in second-opinion mode and the caller may annotate.
import { h } from "../dom.js";
import { api } from "../api.js";
import OpenSeadragon from "openseadragon";

const MARGIN = 3; // the view shows the annotation and this many times its size around it (at least 200 px)

export function createVerifyPanel(ed) {
  const { ctx } = ed;
  const settings = (ctx.info && ctx.info.settings) || {};
  const active = settings.mode === "second-opinion" && ctx.mayEdit;
  let items = [], index = -1, walking = false, total = 0;
  const info = h("span", { id: "verify-progress" }, "");
  const start = h("button", { id: "verify-start", type: "button" }, "Verify annotations");
  const yes = h("button", { id: "verify-yes", type: "button", disabled: true }, "Yes (Y)");
  const no = h("button", { id: "verify-no", type: "button", disabled: true }, "No (X)");
  const comment = h("input", { id: "verify-comment", placeholder: "Comment (optional)", size: 22, "aria-label": "verification comment" });
  const result = h("div", { id: "verify-result", role: "status" });
  const el = h("section.verify", { id: "verify", hidden: !active }, h("h2", {}, "Second opinion"),
    h("div.row", {}, start, " ", info), h("div.row", {}, yes, no), comment, result,
    h("p.hint", {}, `each annotation needs ${settings.opinions || 1} verifications by different users. `,
      "Y: yes, X or Shift+N: no, →: skip, ←: back"));

  const current = () => (walking && index >= 0 && index < items.length ? items[index] : null);

  function render() {
    const cur = current();
    yes.disabled = no.disabled = !cur;
    if (!walking) info.textContent = `${items.length} to verify`;
    else if (!cur) info.textContent = items.length ? "end of the list" : "nothing left to verify";
    else info.textContent = `${index + 1} of ${items.length} (${cur.label}, ${cur.verifications} of ${settings.opinions})`;
  }

  function show() {
    render();
    const cur = current();
    if (!cur) { ed.select([]); return; }
    const [x0, y0, x1, y1] = cur.bounds;
    const s = Math.max(200, MARGIN * Math.max(x1 - x0, y1 - y0));
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const r = new OpenSeadragon.Rect(cx - s / 2, cy - s / 2, s, s);
    ctx.viewer.viewport.fitBounds(ctx.viewer.viewport.imageToViewportRectangle(r), true);
    ed.select([cur.id]);
  }

  async function load() {
    const got = await api.pendingVerifications(ctx.repo, ctx.imageName, ctx.workTip ? ctx.workBranch : ctx.commit);
    items = got.pending;
    total = got.total;
    render();
  }

  async function begin() {
    await load();
    walking = true;
    index = items.length ? 0 : -1;
    show();
  }

  function step(d) {
    if (!walking) return;
    index = Math.max(0, Math.min(items.length, index + d));
    show();
  }

  async function verdict(isYes) {
    const cur = current();
    if (!cur) return;
    const body = { yes: isYes, branch: ctx.workBranch, expected_parent: ctx.workTip || null };
    if (comment.value.trim()) body.comment = comment.value.trim();
    if (!ctx.workTip) body.from = ctx.commit;
    let r;
    try {
      r = await api.verify(ctx.repo, ctx.imageName, cur.id, body);
    } catch (e) {
      result.textContent = `Not verified: ${e.message}`;
      result.classList.add("error");
      return;
    }
    result.classList.remove("error");
    result.textContent = `${isYes ? "Yes" : "No"} for ${cur.id.slice(0, 8)}, saved as ${r.commit.slice(0, 12)} on ${r.branch}.`;
    comment.value = "";
    ed.moveTo(r.commit, [cur.id]);
    items.splice(index, 1); // verified by the caller: no longer theirs to verify
    show();
    ctx.events.emit("verify", { id: cur.id, yes: isYes, commit: r.commit });
  }

  let chain = Promise.resolve();
  const queue = (f) => {
    chain = chain.then(f).catch((e) => { result.textContent = `verification: ${e.message}`; result.classList.add("error"); });
    return chain;
  };
  start.addEventListener("click", () => queue(begin));
  yes.addEventListener("click", () => queue(() => verdict(true)));
  no.addEventListener("click", () => queue(() => verdict(false)));
  document.addEventListener("keydown", (ev) => {
    if (!walking || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target instanceof HTMLElement && ev.target.matches("textarea, input, select")) return;
    const k = ev.key;
    let act = null;
    if (k === "y" || k === "Y") act = () => verdict(true);
    else if (k === "x" || k === "X" || k === "N") act = () => verdict(false);
    else if (k === "ArrowRight") act = () => step(1);
    else if (k === "ArrowLeft") act = () => step(-1);
    if (!act) return;
    ev.preventDefault(); ev.stopImmediatePropagation();
    queue(act);
  }, true);
  const ready = active ? queue(load) : Promise.resolve();
  return {
    el,
    api: {
      active: () => active, ready: () => ready, settled: () => chain, start: () => queue(begin),
      yes: () => queue(() => verdict(true)), no: () => queue(() => verdict(false)),
      next: () => queue(() => step(1)), previous: () => queue(() => step(-1)),
      state: () => ({ walking, index, current: current(), pending: items.map((x) => x.id), total }),
    },
  };
}
