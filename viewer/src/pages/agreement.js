// The agreement page (/<repo>/agreement?branches=users/*/study or ?rev=A&rev=B...): the pairwise table of
// raters, detection F1 and Cohen's kappa of labels on matched pairs (GET /api/v1/repos/NAME/agreement).
// In blind mode only maintainers may see it; others get the server's error in the page.
import { api } from "../api.js";
import { h } from "../dom.js";

const num = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(3));

function matrix(id, title, raters, values, counts) {
  const head = h("tr", {}, h("th", {}, title), raters.map((r) => h("th", { scope: "col" }, r)));
  const rows = raters.map((r, i) => h("tr", { dataset: { rater: r } }, h("th", { scope: "row" }, r, " ",
    h("span.n", {}, `(${counts[r]})`)), raters.map((c, j) => h("td", { dataset: { a: r, b: c },
    class: i === j ? "self" : "" }, i === j ? "" : num(values[i][j])))));
  return h("table.agreement", { id }, h("thead", {}, head), h("tbody", {}, rows));
}

export async function renderAgreement(app, p) {
  const params = new URLSearchParams(location.search);
  const query = { branches: params.get("branches") || (params.getAll("rev").length ? "" : "users/*"),
    match: params.get("match") || "", image: params.get("image") || "" };
  const revs = params.getAll("rev");
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) s.set(k, v);
  for (const r of revs) s.append("rev", r);
  app.append(h("h1", {}, "Agreement of raters"));
  const table = await api.agreement(p.repo, s.toString());
  const raters = table.raters;
  app.append(h("p.agreement-what", {}, `${raters.length} raters, ${table.images.length} image(s), pairs by `,
    h("code", {}, table.match.iou !== null ? `IoU ≥ ${table.match.iou}` : `distance ≤ ${table.match.dist} px`),
    " whatever the labels; kappa of their labels on those pairs."));
  app.append(matrix("agreement-f1", "detection F1", raters, table.f1, table.annotations));
  app.append(matrix("agreement-kappa", "Cohen's κ", raters, table.kappa, table.annotations));
  window.exact = { agreement: table };
}
