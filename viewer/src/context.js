// What the slide page needs before it draws: the caller, role, revision and its commit, the image
// record, the label set in sort order, the working branch users/NAME/edits and whether it may edit.
import { api, ApiError } from "./api.js";

const EDIT_ROLES = new Set(["annotate", "maintain", "admin"]);

export async function loadSlideContext(repo, imageName, session) {
  const params = new URLSearchParams(location.search);
  const info = await api.repo(repo);
  const user = session && session.user ? session.user : null;
  const workBranch = user ? `users/${user}/edits` : null;
  const { refs } = await api.refs(repo);
  const workTip = workBranch ? refs[`heads/${workBranch}`] || null : null;
  const mayEdit = !!user && EDIT_ROLES.has(info.role);
  const rev = params.get("rev") || (mayEdit && workTip ? workBranch : "HEAD");
  let commit;
  try {
    // the log route takes the revision as a query parameter, so branch names with "/" resolve too
    const { log } = await api.log(repo, { rev, n: 1 });
    if (!log.length) throw new ApiError(404, "not_found", "empty history");
    commit = log[0].id;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) throw new Error(`no revision ${rev} in ${repo}`);
    throw e;
  }
  const [{ images }, labelSet] = await Promise.all([api.images(repo, commit), api.labels(repo, commit)]);
  const image = images.find((i) => i.name === imageName);
  if (!image) throw new Error(`no image ${imageName} in ${repo} at ${rev}`);
  const labels = [...labelSet.labels].sort((a, b) => (a.order ?? 0) - (b.order ?? 0) || a.name.localeCompare(b.name));
  // edits go on the working branch: from its tip, or (it does not exist yet) from the commit shown
  const onWorkBranch = workTip ? commit === workTip : true;
  const frame = Math.max(0, Math.min((image.frames || 1) - 1, parseInt(params.get("frame") || "0", 10) || 0));
  return {
    repo, imageName, image, labels, info, role: info.role, user, refs, branches: info.branches,
    rev, commit, workBranch, workTip, mayEdit, canEdit: mayEdit && onWorkBranch, frame,
    mpp: image.mpp || null,
  };
}
