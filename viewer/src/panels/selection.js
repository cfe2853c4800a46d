// What is selected: label, kind, area in µm² and perimeter / length in µm (from the slide's mpp), its
// verifications (who said yes or no) and attached media.
import { h, clear } from "../dom.js";
import { api } from "../api.js";
import { area, length } from "../geometry.js";

export function formatLength(px, mpp) {
  if (!mpp) return `${px.toFixed(1)} px`;
  const um = px * mpp;
  return um >= 1000 ? `${(um / 1000).toFixed(3)} mm` : `${um.toFixed(1)} µm`;
}

export function formatArea(px2, mpp) {
  if (!mpp) return `${px2.toFixed(0)} px²`;
  const um2 = px2 * mpp * mpp;
  return um2 >= 1e6 ? `${(um2 / 1e6).toFixed(4)} mm²` : `${um2.toFixed(1)} µm²`;
}

export function createSelectionPanel(ed) {
  const body = h("div", { id: "selection-info" });
  const el = h("section", {}, h("h2", {}, "Selection"), body);
  function update() {
    const recs = ed.selectedCached();
    clear(body);
    if (!recs.length) { body.append(h("p.muted", {}, "Nothing selected.")); return; }
    body.append(h("p", {}, `${recs.length} selected`));
    for (const r of recs.slice(0, 5)) {
      const g = r.geometry;
      const isArea = g.type === "Polygon" || g.type === "MultiPolygon";
      body.append(h("div.sel", { dataset: { id: r.id } }, h("b", {}, r.label), " ",
        isArea ? h("span.area", {}, formatArea(area(g), ed.ctx.mpp)) : null,
        g.type !== "Point" ? [" ", h("span.length", {}, (isArea ? "perimeter " : "length ") + formatLength(length(g), ed.ctx.mpp))] : null));
      const ver = Array.isArray(r.verifications) ? r.verifications : [];
      if (ver.length) {
        body.append(h("ul.verifications", { dataset: { id: r.id } }, ver.map((v) => h("li", {
          class: v.yes ? "yes" : "no", title: v.time ? new Date(v.time * 1000).toISOString().slice(0, 16).replace("T", " ") : "",
        }, `${v.yes ? "✓" : "✗"} ${v.user}`, v.comment ? h("span.comment", {}, ` “${v.comment}”`) : null))));
      }
      const media = (r.properties && Array.isArray(r.properties.media)) ? r.properties.media : [];
      for (const m of media) body.append(mediaElement(ed.ctx.repo, m));
    }
    if (recs.length === 1 && ed.ctx.canEdit) body.append(uploadControl(ed, recs[0].id));
  }
  update();
  return { el, update };
}

// an attached file (exact media add): played or shown from the repository's artefact route
function mediaElement(repo, m) {
  const src = `/api/v1/repos/${encodeURIComponent(repo)}/artefacts/${encodeURIComponent(m.artefact)}`;
  const t = String(m.type || "");
  const tag = t.startsWith("audio/") ? "audio" : t.startsWith("video/") ? "video" : "img";
  const el = h(`${tag}.media`, tag === "img" ? { src, alt: m.name } : { src, controls: true, preload: "metadata" });
  return h("div.media-item", { dataset: { artefact: m.artefact } }, h("span", {}, m.name), el);
}

// attach a file from this computer: streamed to the server, one commit on the working branch
function uploadControl(ed, id) {
  const { ctx } = ed;
  const note = h("span.upload-status", { id: "media-upload-status", role: "status" });
  const input = h("input", { type: "file", id: "media-upload", accept: "audio/*,video/*,image/*",
    "aria-label": "attach a media file", onchange: () => upload() });
  async function upload() {
    const file = input.files && input.files[0];
    if (!file) return;
    if (ed.state.size) { note.textContent = "Save or undo your pending edits first."; note.classList.add("error"); return; }
    note.classList.remove("error");
    note.textContent = `Uploading ${file.name} …`;
    const params = { branch: ctx.workBranch, expected_parent: ctx.workTip || undefined, from: ctx.workTip ? undefined : ctx.commit };
    try {
      const r = await api.uploadMedia(ctx.repo, ctx.imageName, id, file, params);
      ed.state.reset(r.commit);
      ctx.workTip = r.commit;
      ctx.commit = r.commit;
      ctx.rev = ctx.workBranch;
      ctx.layer.setCommit(r.commit);
      await ed.refresh([id]);
      ctx.events.emit("media", { id, commit: r.commit, media: r.media });
    } catch (e) {
      note.textContent = e.status === 409 ? `Not attached: ${ctx.workBranch} moved on (reload, then retry).` : `Not attached: ${e.message}`;
      note.classList.add("error");
    }
  }
  return h("div.media-upload", {}, h("label", {}, "Attach media ", input), note);
}
