// The page header: home link, repository breadcrumb, signed-in user with sign-out, or a sign-in link.
import { api } from "../api.js";
import { h } from "../dom.js";

export async function renderHeader(body, p) {
  const s = await api.session();
  const crumbs = [h("a.home", { href: "/" }, "exactvc")];
  if (p.repo) crumbs.push(" / ", h("a", { href: `/${encodeURIComponent(p.repo)}` }, p.repo));
  if (p.image) crumbs.push(" / ", h("span", {}, p.image));
  const who = s && s.user
    ? h("span.who", {}, "signed in as ", h("b", { id: "whoami" }, s.user), " ",
      h("button", { id: "signout", type: "button", onclick: async () => { await api.signOut(); location.reload(); } },
        "Sign out"))
    : h("a", { id: "signin-link", href: `/-/signin?next=${encodeURIComponent(location.pathname + location.search)}` },
      "Sign in");
  const header = h("header.top", {}, h("nav", {}, crumbs), who);
  body.prepend(header);
  return s;
}
