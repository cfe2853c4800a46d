// The evaluation panel of the slide page (?run=RUN): a run's predictions against the pinned truth as
// TP / FP / FN, with counts, a legend, and switches for the overlay and the label layer under it.
import { h } from "../dom.js";
import { createEvaluationOverlay, STATUS_COLORS } from "../layer/evaluation.js";

const NAMES = { tp: "true positive", fp: "false positive", fn: "false negative" };

export async function createEvaluationPanel(ctx, { repo, image, run, truth, match }) {
  const el = h("section.evaluation", { id: "evaluation-panel" }, h("h2", {}, "Evaluation"));
  try {
    const ov = await createEvaluationOverlay(ctx.viewer, { repo, image, run, truth, match });
    ctx.layer.setOpacity(0); // the truth is drawn as TP / FN; the label layer can be switched on under it
    const m = ov.match || {};
    el.append(
      h("p.run", {}, "Run ", h("a", { href: `/${encodeURIComponent(repo)}/experiments#run-${ov.run}` },
        h("code", {}, ov.run.slice(0, 12))), " against ", h("code", {}, ov.truth.slice(0, 12)),
        m.iou != null ? ` (IoU ≥ ${m.iou})` : m.dist != null ? ` (≤ ${m.dist} px)` : ""),
      h("ul.legend", {}, ["tp", "fp", "fn"].map((s) => h("li", { dataset: { status: s } },
        h("span.swatch", { style: { background: STATUS_COLORS[s] } }), `${s.toUpperCase()} (${NAMES[s]}): `,
        h("span.n", { id: `eval-${s}` }, ov.counts[s])))),
      h("label", {}, h("input", { type: "checkbox", id: "eval-show", checked: true,
        onchange: (e) => ov.setVisible(e.target.checked) }), " show TP / FP / FN"),
      h("label", {}, h("input", { type: "checkbox", id: "eval-labels",
        onchange: (e) => ctx.layer.setOpacity(e.target.checked ? 1 : 0) }), " show the labels too"));
    return { el, overlay: ov };
  } catch (e) {
    el.append(h("p.error", { role: "alert", id: "eval-error" }, `cannot show run ${run}: ${e.message}`));
    return { el, overlay: null };
  }
}
