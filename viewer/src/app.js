// Entry of the list, sign-in, image set, pull request list and agreement pages (the slide page is slide.js).
import { renderRepos } from "./pages/repos.js";
import { renderSignin } from "./pages/signin.js";
import { renderImageSet } from "./pages/imageset.js";
import { renderPulls } from "./pages/pulls.js";
import { renderAgreement } from "./pages/agreement.js";
import { renderHeader } from "./pages/header.js";
import { page, clear, showError } from "./dom.js";

const render = { repos: renderRepos, signin: renderSignin, imageset: renderImageSet, pulls: renderPulls, agreement: renderAgreement };

async function main() {
  const app = clear(document.getElementById("app"));
  const p = page();
  try {
    await renderHeader(document.body, p);
    await render[p.page](app, p);
  } catch (e) {
    showError(app, e);
  }
  document.body.dataset.ready = "1";
}

main();
