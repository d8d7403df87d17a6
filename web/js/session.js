// session.js — signing in with user-service and keeping the tokens fresh.
//
// The session (access token, refresh token, the user) lives in localStorage so it survives a
// reload; tokens only ever travel in request bodies and the Authorization header, never in URLs.
// Refresh tokens rotate: every refresh spends the old one. Tabs share one session, so a refresh
// runs under a Web Lock and first re-reads storage: if another tab refreshed meanwhile, its
// tokens are used instead of spending an already spent token (which would end the session).

const STORAGE_KEY = 'converge.session';
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;
/** Wait before retrying a refresh that could not reach user-service. */
const RETRY_MS = 15_000;

/** An error answer of a Converge service: `code` and `message` from the envelope. */
export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = fields || {};
  }
}

/** Sends a JSON request and returns the parsed body; throws ApiError for error answers. */
export async function requestJson(url, { method = 'GET', body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  return answerOf(res);
}

/** A response's JSON body (null for 204); throws ApiError for error answers. */
export async function answerOf(res) {
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data?.error ?? {};
    throw new ApiError(res.status, e.code ?? 'internal', e.message ?? `HTTP ${res.status}`, e.fields);
  }
  return data;
}

export class Session extends EventTarget {
  /** @param {string} userServiceUrl user-service's base URL, without a trailing slash. */
  constructor(userServiceUrl) {
    super();
    this.base = userServiceUrl;
    this.data = load();
    this.refreshing = null;
    this.timer = null;
    window.addEventListener('storage', (e) => {
      if (e.key !== STORAGE_KEY) return;
      const was = this.data;
      this.data = load();
      if (was && !this.data) this.end('signed-out');
      else this.schedule();
    });
    this.schedule();
  }

  get user() {
    return this.data?.user ?? null;
  }

  get signedIn() {
    return this.data !== null;
  }

  async login(login, password) {
    this.adopt(await requestJson(`${this.base}/auth/login`, { method: 'POST', body: { login, password } }));
  }

  async register({ username, email, displayName, password }) {
    const body = { username, email, displayName, password };
    this.adopt(await requestJson(`${this.base}/auth/register`, { method: 'POST', body }));
  }

  /** Revokes the session server-side (best effort) and forgets it here. */
  async logout() {
    const refreshToken = this.data?.refreshToken;
    this.clear();
    if (refreshToken) {
      await requestJson(`${this.base}/auth/logout`, { method: 'POST', body: { refreshToken } }).catch(() => {});
    }
    this.end('signed-out');
  }

  /**
   * A valid access token, refreshed first when it is about to expire (or `forceRefresh`).
   * Null when the session is gone (then `ended` has fired). Throws ApiError `network` when
   * user-service cannot be reached, so callers can retry later.
   */
  async accessToken({ forceRefresh = false } = {}) {
    if (!this.data) return null;
    if (!forceRefresh && this.data.expiresAt - REFRESH_MARGIN_MS > Date.now()) return this.data.accessToken;
    await this.refresh(this.data.refreshToken);
    return this.data?.accessToken ?? null;
  }

  /** Calls an API with the access token, refreshing once if the token turns out to be expired. */
  async fetchJson(url, options = {}) {
    const token = await this.accessToken();
    if (!token) throw new ApiError(401, 'unauthorized', 'Not signed in.');
    try {
      return await requestJson(url, { ...options, token });
    } catch (e) {
      if (e.status !== 401) throw e;
      const fresh = await this.accessToken({ forceRefresh: true });
      if (!fresh) throw e;
      return requestJson(url, { ...options, token: fresh });
    }
  }

  /**
   * `fetch` with the access token in the Authorization header, for what is not JSON (image bytes
   * up and down); refreshes once if the token turns out to be expired. Answers the Response, error
   * statuses included; throws ApiError `network` when the server cannot be reached.
   */
  async fetchAuthorized(url, { method = 'GET', headers = {}, body, signal } = {}) {
    const attempt = async (token) => {
      try {
        return await fetch(url, { method, body, signal, headers: { ...headers, authorization: `Bearer ${token}` } });
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
      }
    };
    const token = await this.accessToken();
    if (!token) throw new ApiError(401, 'unauthorized', 'Not signed in.');
    const res = await attempt(token);
    if (res.status !== 401) return res;
    const fresh = await this.accessToken({ forceRefresh: true });
    return fresh ? attempt(fresh) : res;
  }

  /** Spends `spent` for new tokens, once across concurrent callers and tabs. */
  refresh(spent) {
    if (!this.refreshing) {
      const run = () => this.refreshLocked(spent);
      const locked = navigator.locks ? navigator.locks.request('converge.refresh', run) : run();
      this.refreshing = locked.finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async refreshLocked(spent) {
    const current = load();
    if (!current) {
      this.data = null;
      return;
    }
    if (current.refreshToken !== spent) {
      this.data = current; // another tab refreshed first
      this.schedule();
      return;
    }
    try {
      const body = { refreshToken: current.refreshToken };
      this.adopt(await requestJson(`${this.base}/auth/refresh`, { method: 'POST', body }), current.user);
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        this.clear();
        this.end('expired');
        return;
      }
      throw e;
    }
  }

  /** Keeps the user's new display name (the next access token carries it too). */
  renamed(displayName) {
    if (!this.data?.user) return;
    this.data = { ...this.data, user: { ...this.data.user, displayName } };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.data));
  }

  /** Stores a login/register/refresh answer. */
  adopt(answer, user = answer.user) {
    this.data = {
      user: user?.id ? { id: user.id, displayName: user.displayName, username: user.username } : this.data?.user,
      accessToken: answer.accessToken,
      refreshToken: answer.refreshToken,
      expiresAt: Date.now() + answer.expiresIn * 1000,
    };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.data));
    this.schedule();
  }

  clear() {
    this.data = null;
    clearTimeout(this.timer);
    localStorage.removeItem(STORAGE_KEY);
  }

  /**
   * Refreshes silently ahead of expiry, so a reconnect never waits for it. `retryMs`: after a
   * failed attempt (user-service unreachable), try again that much later instead.
   */
  schedule(retryMs) {
    clearTimeout(this.timer);
    if (!this.data) return;
    const due = retryMs ?? Math.max(1000, this.data.expiresAt - REFRESH_MARGIN_MS - Date.now());
    this.timer = setTimeout(() => {
      if (this.data) this.refresh(this.data.refreshToken).catch(() => this.schedule(RETRY_MS));
    }, Math.min(due, 2 ** 31 - 1));
  }

  /** Forgets the session here after the server ended it (every session, or the account): see {@link end}. */
  forget(reason) {
    this.clear();
    this.end(reason);
  }

  /**
   * `reason`: 'signed-out' (the user asked), 'signed-out-everywhere' (the user ended every session),
   * 'deactivated' (the user deactivated the account) or 'expired' (the server refused the session).
   */
  end(reason) {
    this.dispatchEvent(new CustomEvent('ended', { detail: { reason } }));
  }
}

function load() {
  try {
    const data = JSON.parse(localStorage.getItem(STORAGE_KEY));
    return data && data.accessToken && data.refreshToken ? data : null;
  } catch {
    return null;
  }
}
