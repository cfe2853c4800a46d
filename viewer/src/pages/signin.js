// Sign-in page: user + password, or an API token; POST /api/v1/session sets the session cookie.
import { api } from "../api.js";
import { h } from "../dom.js";

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // only paths on this origin: never an open redirect
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export async function renderSignin(app) {
  const msg = h("p.error", { id: "signin-error", role: "alert" });
  const user = h("input", { id: "user", name: "user", autocomplete: "username", required: true });
  const pw = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" });
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off" });
  const submit = async (ev, creds) => {
    ev.preventDefault();
    msg.textContent = "";
    try {
      await api.signIn(creds());
      location.assign(safeNext());
    } catch (e) {
      msg.textContent = e.status === 401 ? "Wrong user name, password or token." : e.message;
    }
  };
  app.append(
    h("h1", {}, "Sign in"),
    h("form", { id: "signin-form", onsubmit: (ev) => submit(ev, () => ({ user: user.value, password: pw.value })) },
      h("label", {}, "User ", user), h("label", {}, "Password ", pw),
      h("button", { type: "submit", id: "signin-submit" }, "Sign in")),
    h("form", { id: "token-form", onsubmit: (ev) => submit(ev, () => ({ token: token.value.trim() })) },
      h("label", {}, "or an API token ", token), h("button", { type: "submit", id: "token-submit" }, "Sign in with token")),
    msg,
  );
}
