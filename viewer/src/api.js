// The REST API client: same-origin fetch with the session cookie; writes carry X-CSRF-Token.
// Errors become ApiError with the server's {"error": {"type", "message"}}.

export class ApiError extends Error {
  constructor(status, type, message, body) {
    super(message);
    this.status = status;
    this.type = type;
    this.body = body;
  }
}

const CSRF_KEY = "exact.csrf";
let session; // undefined: not asked yet; null: signed out

async function call(method, url, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") {
    const csrf = (session && session.csrf_token) || sessionStorage.getItem(CSRF_KEY);
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  let resp;
  try {
    resp = await fetch(url, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the server (${e.message})`);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.type || "http_error", err.message || `${resp.status} ${resp.statusText}`, data);
  }
  return data;
}

const enc = encodeURIComponent;
const q = (params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const t = s.toString();
  return t ? "?" + t : "";
};

export const api = {
  base: "/api/v1",
  async session(refresh = false) {
    if (session !== undefined && !refresh) return session;
    try {
      session = await call("GET", "/api/v1/session");
      if (session && session.csrf_token) sessionStorage.setItem(CSRF_KEY, session.csrf_token);
    } catch (e) {
      if (e.status !== 401 && e.status !== 404 && e.status !== 405) throw e;
      session = null;
    }
    return session;
  },
  async signIn(creds) {
    session = await call("POST", "/api/v1/session", creds);
    if (session.csrf_token) sessionStorage.setItem(CSRF_KEY, session.csrf_token);
    return session;
  },
  async signOut() {
    try { await call("DELETE", "/api/v1/session"); } finally {
      session = null;
      sessionStorage.removeItem(CSRF_KEY);
    }
  },
  repos: () => call("GET", "/api/v1/repos"),
  repo: (name) => call("GET", `/api/v1/repos/${enc(name)}`),
  refs: (name) => call("GET", `/api/v1/repos/${enc(name)}/refs`),
  commit: (name, rev) => call("GET", `/api/v1/repos/${enc(name)}/commits/${enc(rev)}`),
  log: (name, params = {}) => call("GET", `/api/v1/repos/${enc(name)}/log${q(params)}`),
  images: (name, rev) => call("GET", `/api/v1/repos/${enc(name)}/images${q({ rev })}`),
  labels: (name, rev) => call("GET", `/api/v1/repos/${enc(name)}/labels${q({ rev })}`),
  labelCounts: (name, image, rev) => call("GET", `/-/label-counts/${enc(name)}/${enc(image)}${q({ rev })}`),
  annotations: (name, image, params) =>
    call("GET", `/api/v1/repos/${enc(name)}/images/${enc(image)}/annotations${q(params)}`),
  edits: (name, body) => call("POST", `/api/v1/repos/${enc(name)}/edits`, body),
  slideInfo: (fp, frame) => call("GET", `/slides/${enc(fp)}/info.json${q({ frame })}`),
};
api.diffs = (name, oldRev, newRev, image) =>
  call("GET", `/api/v1/repos/${enc(name)}/diff${q({ old: oldRev, new: newRev, image })}`);
api.runs = (name, params = {}) => call("GET", `/api/v1/repos/${enc(name)}/runs${q(params)}`);
api.run = (name, ident) => call("GET", `/api/v1/repos/${enc(name)}/runs/${enc(ident)}`);
api.metrics = (name, params = {}) => call("GET", `/api/v1/repos/${enc(name)}/metrics${q(params)}`);
api.outcomes = (name, ident, params) =>
  call("GET", `/api/v1/repos/${enc(name)}/runs/${enc(ident)}/outcomes${q(params)}`);
api.imageChanges = (name, image, params) =>
  call("GET", `/api/v1/repos/${enc(name)}/images/${enc(image)}/changes${q(params)}`);
api.pull = (name, n) => call("GET", `/api/v1/repos/${enc(name)}/pulls/${n}`);
api.pullChanges = (name, n, params = { limit: 5000 }) => call("GET", `/api/v1/repos/${enc(name)}/pulls/${n}/changes${q(params)}`);
api.decide = (name, n, body) => call("POST", `/api/v1/repos/${enc(name)}/pulls/${n}/decisions`, body);
api.review = (name, n, body) => call("POST", `/api/v1/repos/${enc(name)}/pulls/${n}/reviews`, body);
api.comments = (name, n) => call("GET", `/api/v1/repos/${enc(name)}/pulls/${n}/comments`);
api.comment = (name, n, body) => call("POST", `/api/v1/repos/${enc(name)}/pulls/${n}/comments`, body);
api.pullConflicts = (name, n, params = {}) => call("GET", `/api/v1/repos/${enc(name)}/pulls/${n}/conflicts${q(params)}`);
api.pulls = (name, params = {}) => call("GET", `/api/v1/repos/${enc(name)}/pulls${q(params)}`);
api.resolveThread = (name, n, cid, resolved) => call("PATCH", `/api/v1/repos/${enc(name)}/pulls/${n}/comments/${cid}`, { resolved });
api.matches = (name, image, params) => call("GET", `/api/v1/repos/${enc(name)}/images/${enc(image)}/matches${q(params)}`);
api.mergePull = (name, n, body = {}) => call("POST", `/api/v1/repos/${enc(name)}/pulls/${n}/merge`, body);
api.screening = (name, image) => call("GET", `/api/v1/repos/${enc(name)}/images/${enc(image)}/screening`);
api.putScreening = (name, image, state) =>
  call("PUT", `/api/v1/repos/${enc(name)}/images/${enc(image)}/screening`, state);
api.propose = (name, body) => call("POST", `/api/v1/repos/${enc(name)}/proposals`, body);
api.agreement = (name, query) => call("GET", `/api/v1/repos/${enc(name)}/agreement${query ? "?" + query : ""}`);
api.analyse = (name, body) => call("POST", `/api/v1/repos/${enc(name)}/analyses`, body);
api.map = (name, params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const x of Array.isArray(v) ? v : [v]) if (x !== undefined && x !== null && x !== "") s.append(k, x);
  }
  return call("GET", `/api/v1/repos/${enc(name)}/maps?${s}`);
};
api.mapPatches = (name, map, offset, limit) =>
  call("GET", `/api/v1/repos/${enc(name)}/maps/${enc(map)}/patches${q({ offset, limit })}`);
// a file attached to an annotation: the body streamed as it is, one commit on the branch
api.uploadMedia = async (name, image, id, file, params) => {
  const headers = { Accept: "application/json", "Content-Type": file.type || "application/octet-stream" };
  const csrf = (session && session.csrf_token) || sessionStorage.getItem(CSRF_KEY);
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const url = `/api/v1/repos/${enc(name)}/images/${enc(image)}/annotations/${enc(id)}/media${q({ filename: file.name, ...params })}`;
  let resp;
  try {
    resp = await fetch(url, { method: "POST", headers, credentials: "same-origin", body: file });
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the server (${e.message})`);
  }
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.type || "http_error", err.message || `${resp.status} ${resp.statusText}`, data);
  }
  return data;
};
api.verify = (name, image, id, body) =>
  call("POST", `/api/v1/repos/${enc(name)}/images/${enc(image)}/annotations/${enc(id)}/verifications`, body);
api.pendingVerifications = (name, image, rev) =>
  call("GET", `/api/v1/repos/${enc(name)}/images/${enc(image)}/verifications/pending${q({ rev })}`);
