// Repository list: the repositories the caller can read, with the caller's role.
import { api } from "../api.js";
import { h } from "../dom.js";

export async function renderRepos(app) {
  const { repos } = await api.repos();
  app.append(h("h1", {}, "Repositories"));
  if (!repos.length) {
    app.append(h("p", { id: "no-repos" }, "No repository you can read here. ",
      h("a", { href: "/-/signin" }, "Sign in"), " to see more."));
    return;
  }
  app.append(h("ul.repos", { id: "repo-list" }, repos.map((r) =>
    h("li", {}, h("a", { href: `/${encodeURIComponent(r.name)}` }, r.name), " ", h("span.role", {}, r.role)))));
}
