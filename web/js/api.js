// api.js — the REST calls the web client makes, through the signed-in session.

import { answerOf } from './session.js';

export class Api {
  /**
   * @param {import('./session.js').Session} session
   * @param {string} userServiceUrl
   * @param {string} chatServiceUrl '' for this origin
   */
  constructor(session, userServiceUrl, chatServiceUrl = '') {
    this.session = session;
    this.users = userServiceUrl;
    this.chats = chatServiceUrl;
  }

  /** Active users matching `q` (name or username), first page. */
  async searchUsers(q) {
    const page = await this.session.fetchJson(`${this.users}/users?q=${encodeURIComponent(q)}&limit=20`);
    return page.items;
  }

  /** The signed-in user's profile. */
  me() {
    return this.session.fetchJson(`${this.users}/users/me`);
  }

  /** Changes the signed-in user's name and picture (`''` removes it); answers their profile. */
  updateProfile({ displayName, avatarUrl }) {
    return this.session.fetchJson(`${this.users}/users/me`, { method: 'PATCH', body: { displayName, avatarUrl } });
  }

  /**
   * Changes the signed-in user's password. The server signs out every other session and keeps
   * this one, so the stored tokens stay good. Throws ApiError `validation_failed` naming
   * `currentPassword` (wrong) or `newPassword` (too short, or the same), or `rate_limited`.
   */
  changePassword({ currentPassword, newPassword }) {
    return this.session.fetchJson(`${this.users}/users/me/password`, { method: 'POST', body: { currentPassword, newPassword } });
  }

  /** Ends every session of the signed-in user, this one too: no device can refresh its token any more. */
  logoutAll() {
    return this.session.fetchJson(`${this.users}/auth/logout-all`, { method: 'POST' });
  }

  /** Deactivates the signed-in user's account: every session ends, and it cannot sign in again. */
  deactivate() {
    return this.session.fetchJson(`${this.users}/users/me/deactivate`, { method: 'POST' });
  }

  /** Creates a direct chat (or returns the existing one) or a group. */
  createChat({ kind, title, participantIds }) {
    const body = { kind, participantIds };
    if (title) body.title = title;
    return this.session.fetchJson(`${this.chats}/chats`, { method: 'POST', body });
  }

  /** One chat as the signed-in user sees it (participants, watermarks, unread). */
  getChat(chatId) {
    return this.session.fetchJson(this.chatUrl(chatId));
  }

  /** Renames a group (its owner and admins may); answers the chat. Throws ApiError, e.g. `validation_failed`. */
  renameChat(chatId, title) {
    return this.session.fetchJson(this.chatUrl(chatId), { method: 'PATCH', body: { title } });
  }

  /** Adds people to a group (its owner and admins may); answers the chat with its members. */
  addParticipants(chatId, userIds) {
    return this.session.fetchJson(`${this.chatUrl(chatId)}/participants`, { method: 'POST', body: { userIds } });
  }

  /** Removes someone from a group (its owner and admins may; never its owner). */
  removeParticipant(chatId, userId) {
    return this.session.fetchJson(`${this.chatUrl(chatId)}/participants/${encodeURIComponent(userId)}`, { method: 'DELETE' });
  }

  /**
   * Gives a member of a group a role, 'admin' or 'member'; 'owner' hands the group over (the
   * caller becomes an admin). Only its owner may. Answers the chat.
   */
  setRole(chatId, userId, role) {
    const url = `${this.chatUrl(chatId)}/participants/${encodeURIComponent(userId)}/role`;
    return this.session.fetchJson(url, { method: 'PUT', body: { role } });
  }

  /** Leaves a group; an owner who leaves hands it to its longest-standing member. */
  leaveChat(chatId) {
    return this.session.fetchJson(`${this.chatUrl(chatId)}/leave`, { method: 'POST' });
  }

  /** A chat's REST address. */
  chatUrl(chatId) {
    return `${this.chats}/chats/${encodeURIComponent(chatId)}`;
  }

  /**
   * Uploads an image (its bytes as the body, its type as Content-Type) to send in a message;
   * answers the attachment: {id, width, height, url, thumbnailUrl, …}. Throws ApiError, e.g.
   * `payload_too_large`, `unsupported_media_type`, `invalid_image`.
   */
  async uploadImage(file) {
    const url = `${this.chats}/attachments`;
    const headers = { 'content-type': file.type || 'application/octet-stream' };
    return answerOf(await this.session.fetchAuthorized(url, { method: 'POST', headers, body: file }));
  }

  /**
   * Messages of my chats whose text contains `q` (2 to 100 characters, ignoring case), newest
   * first: {messages, hasMore}; `before` (the last message id of the previous page) pages back.
   * `signal` aborts it (a newer search replaces it). Throws ApiError, e.g. `validation_failed`.
   */
  async searchMessages(q, { before, signal } = {}) {
    const params = new URLSearchParams({ q });
    if (before != null) params.set('before', before);
    return answerOf(await this.session.fetchAuthorized(`${this.chats}/messages/search?${params}`, { signal }));
  }

  /** A page of a chat's history, ascending by seq; `before` pages backwards. */
  history(chatId, { before, after, limit = 50 } = {}) {
    const params = new URLSearchParams({ limit: String(limit) });
    if (before != null) params.set('before', String(before));
    if (after != null) params.set('after', String(after));
    return this.session.fetchJson(`${this.chatUrl(chatId)}/messages?${params}`);
  }
}
