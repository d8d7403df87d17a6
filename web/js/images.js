// images.js — the pictures of image messages. chat-service serves them only to a request with the
// Authorization header, which an <img src> cannot send: they are fetched with the token and shown
// through blob: URLs. Thumbnails are kept by path (one per attachment), so that re-rendering the
// log (it is rebuilt on every change) neither fetches them again nor makes them flicker.

import { answerOf } from './session.js';

/** The kinds of image chat-service accepts. */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
/** chat-service's default upload limit; it has the last word (a deployment may set another). */
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

/** Thumbnails kept at most: each object URL holds its bytes until it is revoked. */
const MAX_KEPT = 200;
/** After a failed fetch, re-renders do not ask for the same picture again before this. */
const RETRY_AFTER_MS = 30_000;

/**
 * Whether `url` is a path on chat-service ("/attachments/…"): the only kind of URL the access
 * token may be sent to. Never a protocol-relative `//host/…`, never another origin.
 */
export function isServicePath(url) {
  return typeof url === 'string' && /^\/(?!\/)/.test(url);
}

export class ImageStore {
  /**
   * @param {import('./session.js').Session} session
   * @param {string} baseUrl chat-service's base URL ('' for this origin)
   */
  constructor(session, baseUrl = '') {
    this.session = session;
    this.base = baseUrl;
    /** path → object URL, least recently used first. */
    this.kept = new Map();
    /** path → the fetch under way, so many renders of one picture fetch it once. */
    this.loading = new Map();
    /** path → when its last fetch failed. */
    this.failed = new Map();
    /** Bumped by `clear`: a fetch that ends after it keeps nothing. */
    this.generation = 0;
  }

  /** The object URL of a picture already here, or null (then `load` it). */
  ready(path) {
    const url = this.kept.get(path);
    if (!url) return null;
    this.kept.delete(path); // most recently used goes last
    this.kept.set(path, url);
    return url;
  }

  /** Whether fetching `path` failed a moment ago: a re-render should not hammer the server. */
  failedRecently(path) {
    return Date.now() - (this.failed.get(path) ?? -Infinity) < RETRY_AFTER_MS;
  }

  /** Fetches a picture once however many ask; resolves with its object URL. */
  load(path) {
    const url = this.ready(path);
    if (url) return Promise.resolve(url);
    let loading = this.loading.get(path);
    if (!loading) {
      const generation = this.generation;
      loading = this.fetchObjectUrl(path).then(
        (fetched) => {
          if (generation !== this.generation) {
            URL.revokeObjectURL(fetched);
            throw new Error('signed out');
          }
          this.loading.delete(path);
          this.failed.delete(path);
          this.keep(path, fetched);
          return fetched;
        },
        (error) => {
          this.loading.delete(path);
          this.failed.set(path, Date.now());
          throw error;
        },
      );
      this.loading.set(path, loading);
    }
    return loading;
  }

  /** Takes a local object URL (your own upload) as what `path` shows: no fetch, no flicker. */
  adopt(path, url) {
    if (this.kept.get(path) === url) return;
    this.keep(path, url);
  }

  /** Forgets a picture without revoking its URL (an adopted one that is still on screen elsewhere). */
  forget(path) {
    this.kept.delete(path);
  }

  /**
   * Fetches one picture with the token and answers an object URL of its bytes, which the caller
   * revokes (`load` does that for thumbnails). Throws ApiError (`not_found`, `network`…).
   */
  async fetchObjectUrl(path, { signal } = {}) {
    if (!isServicePath(path)) throw new Error(`not a chat-service path: ${path}`);
    const res = await this.session.fetchAuthorized(`${this.base}${path}`, { signal });
    if (!res.ok) await answerOf(res); // throws the error envelope as ApiError
    return URL.createObjectURL(await res.blob());
  }

  keep(path, url) {
    const old = this.kept.get(path);
    if (old && old !== url) URL.revokeObjectURL(old);
    this.kept.delete(path);
    this.kept.set(path, url);
    while (this.kept.size > MAX_KEPT) {
      const [oldest, oldUrl] = this.kept.entries().next().value;
      this.kept.delete(oldest);
      URL.revokeObjectURL(oldUrl);
    }
  }

  /** Lets every picture go (signing out). */
  clear() {
    this.generation += 1;
    for (const url of this.kept.values()) URL.revokeObjectURL(url);
    this.kept.clear();
    this.loading.clear();
    this.failed.clear();
  }
}
