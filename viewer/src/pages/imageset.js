// Image set page: thumbnails, names, sizes, annotation counts per label, the last commit.
import { api } from "../api.js";
import { h } from "../dom.js";
import { slideBase } from "../origin.js";

export async function renderImageSet(app, p) {
  const repo = p.repo;
  const rev = new URLSearchParams(location.search).get("rev") || "HEAD";
  const [info, { images }, labels, log] = await Promise.all([
    api.repo(repo), api.images(repo, rev), api.labels(repo, rev), api.log(repo, { rev, n: 1 }).catch(() => ({ log: [] }))]);
  const colors = Object.fromEntries(labels.labels.map((l) => [l.name, l.color]));
  app.append(h("h1", {}, repo, " ", h("span.role", {}, info.role)));
  app.append(h("p.links", {}, h("a", { id: "experiments-link", href: `/${encodeURIComponent(repo)}/experiments` },
    "Experiments"), " — runs, metrics and predictions pinned to commits", " · ",
    h("a", { id: "pulls-link", href: `/${encodeURIComponent(repo)}/pulls` }, "Pull requests"), " — proposed label changes under review"));
  if (info.settings && info.settings.mode === "blind" && ["maintain", "admin"].includes(info.role)) {
    app.append(h("p.links", {}, h("a", { id: "agreement-link", href: `/${encodeURIComponent(repo)}/agreement?branches=users/*` },
      "Agreement"), " — the raters' pairwise detection F1 and kappa (blind study)"));
  }
  const last = log.log[0];
  if (last) {
    app.append(h("p.last-commit", { id: "last-commit" }, "Last commit ", h("code", {}, last.id ? last.id.slice(0, 12) : ""),
      " ", (last.message || "").split("\n")[0], " — ", last.author || ""));
  }
  const grid = h("div.images", { id: "image-list" });
  app.append(grid);
  for (const img of images) {
    const href = `/${encodeURIComponent(repo)}/slide/${encodeURIComponent(img.name)}${rev !== "HEAD" ? `?rev=${encodeURIComponent(rev)}` : ""}`;
    const counts = h("ul.counts");
    const card = h("div.image-card", { dataset: { image: img.name } },
      h("a", { href }, h("img.thumb", { src: `${slideBase(img)}/slides/${img.fingerprint}/thumbnail.jpeg?size=256`, alt: "", loading: "lazy" })),
      h("a.name", { href }, img.name),
      h("div.size", {}, `${img.width} × ${img.height} px`, img.mpp ? ` · ${img.mpp} µm/px` : "",
        img.frames > 1 ? ` · ${img.frames} frames` : ""),
      h("div.total", {}, `${img.annotations} annotations`), counts);
    grid.append(card);
    api.labelCounts(repo, img.name, rev).then((c) => {
      for (const [name, n] of Object.entries(c.labels).sort()) {
        counts.append(h("li", { dataset: { label: name } }, h("span.swatch", { style: { background: colors[name] || "#888" } }),
          `${name}: `, h("span.n", {}, n)));
      }
    }).catch(() => {});
  }
}
