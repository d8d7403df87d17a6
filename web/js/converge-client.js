// converge-client.js — the Converge WebSocket protocol (docs/protocol.md) for any JavaScript app.
//
// No DOM, no dependencies: give it the WebSocket URL and a function that returns a fresh access
// token, listen to its events, call its methods. It takes care of
//   - authenticating with the `auth` frame (never a token in the URL),
//   - reconnecting with exponential backoff and jitter, and resuming every known chat from the last
//     seq it delivered, so nothing is missed or delivered twice,
//   - detecting dead connections with application pings,
//   - keeping the connection open past its access token's expiry: before the server's deadline
//     (`tokenExpiresAt`) it asks `getToken` for a fresh token and sends it in an `auth` frame,
//   - sending messages idempotently: a send that times out or is cut off is retried with the same
//     `clientMsgId`, and only a final failure rejects,
//   - editing, deleting and reacting to messages, and resuming the changes (edits, deletions,
//     reactions) made while it was away: it keeps each chat's edit point (the `lastEditSeq` its
//     copies are complete up to) and sends those points as `editsAfter` when it reconnects.
//
// Events (an EventTarget; each event's `detail` is shown):
//   status     {state: 'connecting'|'online'|'offline'|'stopped', retryAt?: ms epoch, attempt?,
//               closeCode?: the server's close code (4029: the user has too many connections open)}
//   ready      {user, chats, online, resumed, readReceiptsMaxChatMembers}
//                                                chats as in the `ready` frame; `online`: ids of the
//                                                chats' members online now (null if the server has no presence);
//                                                in chats of more members, others' reads are not sent (null: no limit)
//   message    {message}                         a new message, in seq order per chat, never twice;
//                                                one changed before it came arrives as it is now
//   message-updated {message}                    a message was edited, deleted (`deletedAt` set,
//                                                `content` "") or reacted to (`reactions`: [{emoji,
//                                                userIds}], left out when none); this is it now. Replace your copy only
//                                                if this `editSeq` is higher (a copy without one was
//                                                never changed): a resume may repeat a change
//   read       {chatId, userId, seq}             a read watermark moved
//   delivered  {chatId, seq}                     every participant has received up to seq
//   typing     {chatId, userId, typing}
//   presence   {chatId, userId, online}          a member came online or went offline
//   chat       {chat, online}                    you joined a chat (conversation_created); `online`: its
//                                                members online now (null if the server has no presence)
//   left       {chatId}                          you left or were removed from a chat
//   member     {chatId, userId, joined}          someone joined or left a group you are in
//   chat-updated {chatId, title}                 a group you are in was renamed (by you too)
//   role       {chatId, userId, role}            a member's role in a group you are in changed
//                                                ('owner'|'admin'|'member'; yours too): a hand-over
//                                                is two of these, and an owner who leaves makes an heir
//   participant {chatId, userId, displayName, avatarUrl}
//                                                a member of the chat (you too) changed name or picture
//   auth-failed {}                               the token was refused even after a refresh
//   token-renewed {expiresAt}                    the open connection took a fresh token
//   server-error {code, message}                 an error frame that answers nothing of ours
//
// Use:
//   const client = new ConvergeClient({ url: 'wss://chat.example.com/ws', getToken: () => myToken() });
//   client.addEventListener('message', (e) => show(e.detail.message));
//   client.start();
//   const stored = await client.sendMessage({ chatId, content: 'hi' }); // retried until acked or refused
//   // An image: upload it first (POST /attachments), then send its id; `content` is its caption.
//   await client.sendMessage({ chatId, content: '', attachmentId: upload.id });
//   // Edits and deletions resolve with the message as it is now; the chat's connections, this one
//   // included, also get a `message-updated` event. An edit that names the content it `replaces`
//   // is queued while offline and retried like a send (refused with `edit_conflict` if the message
//   // was edited meanwhile), and so is a deletion (deleting twice answers the same).
//   await client.editMessage({ chatId, seq: stored.seq, content: 'hi there', replaces: stored.content });
//   await client.deleteMessage({ chatId, seq: stored.seq });
//   // Reactions too: one per user and emoji (giving it again, or taking back one not given, changes
//   // nothing). Any participant may react to any message that is not deleted. They are queued
//   // while offline and retried; of changes to one emoji of one message only the latest that has
//   // not gone out is sent, after the answer to the one before, so they apply in the user's order.
//   await client.addReaction({ chatId, seq: stored.seq, emoji: '👍' });
//   await client.removeReaction({ chatId, seq: stored.seq, emoji: '👍' });

/** Renew the connection's token this long before the server's deadline (half the time left, if less). */
const RENEW_MARGIN_MS = 30_000;

/** Error codes for which resending the same frame cannot succeed. */
const FINAL_CODES = new Set([
  'invalid_frame', 'unknown_type', 'payload_too_large', 'validation_failed', 'empty_message',
  'content_too_long', 'invalid_seq', 'not_found', 'forbidden', 'message_deleted', 'edit_conflict',
]);

/** An outbox entry: `frame` under `key`, and the promise its answer settles. */
function outboxItem(key, frame) {
  const item = { key, frame, attempts: 0, timer: null, next: null };
  item.promise = new Promise((resolve, reject) => {
    item.resolve = resolve;
    item.reject = reject;
  });
  return item;
}

/**
 * A random UUID (v4) for `clientMsgId`. `crypto.randomUUID` exists only in secure contexts
 * (https, localhost); `getRandomValues` everywhere, so a page on plain http still works.
 */
export function uuid() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A send that failed for good; `code` is the server's error code, or `timeout`; `fields`, with
 * `validation_failed`, each refused field and why; `retryAfter`, with `rate_limited`, the seconds
 * the server asked to wait.
 */
export class SendError extends Error {
  constructor(code, message, fields, retryAfter) {
    super(message);
    this.name = 'SendError';
    this.code = code;
    if (fields) this.fields = fields;
    if (retryAfter != null) this.retryAfter = retryAfter;
  }
}

export class ConvergeClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url WebSocket URL, e.g. `wss://chat.example.com/ws`.
   * @param {(opts: {forceRefresh: boolean}) => Promise<string|null>} options.getToken
   *   An access token; `forceRefresh` asks for a new one after the server refused the last.
   *   Return null when there is no session any more: the client stops.
   * @param {number} [options.ackTimeoutMs] How long a send waits for its ack before it is retried.
   * @param {number} [options.maxSendAttempts] Attempts (while connected) before a send fails.
   * @param {number} [options.pingIntervalMs] Application ping interval.
   * @param {() => WebSocket} [options.WebSocketImpl] For tests and other runtimes.
   */
  constructor({ url, getToken, ackTimeoutMs = 8000, maxSendAttempts = 4, pingIntervalMs = 25000, WebSocketImpl }) {
    super();
    this.url = url;
    this.getToken = getToken;
    this.ackTimeoutMs = ackTimeoutMs;
    this.maxSendAttempts = maxSendAttempts;
    this.pingIntervalMs = pingIntervalMs;
    this.WebSocketImpl = WebSocketImpl || globalThis.WebSocket;
    /** chatId → highest seq delivered to the app; what a reconnect resumes from. */
    this.positions = new Map();
    /**
     * chatId → the chat's `editSeq` up to which the app has every change (edit, deletion,
     * reaction); a reconnect asks for the changes after it (`editsAfter`). Kept for the chats in
     * `positions`.
     */
    this.editPoints = new Map();
    this.state = 'stopped';
    this.user = null;
    this.ws = null;
    this.nextReq = 1;
    /** req → {resolve, reject, timer} for frames the server answers (send, ping). */
    this.waiting = new Map();
    /**
     * Frames that are safe to send again, until answered or refused: sends by `clientMsgId`,
     * deletions, edits that name the content they replace, and reactions (one key per message and
     * emoji). key → {key, frame, attempts, timer, promise, next…}: `next`, the change of the same
     * reaction that waits for this one's answer.
     */
    this.outbox = new Map();
    this.failures = 0;
    this.authRejected = false;
    this.nudged = false;
    this.timers = { retry: null, ping: null, renew: null };
    /** The token the open connection was last given: a renewal needs a newer one. */
    this.token = null;
    /** When the server stops accepting that token (ms epoch), as `ready`/`authenticated` said. */
    this.tokenDeadline = 0;
    this.onOnline = () => this.reconnectNow();
  }

  /** Opens the connection (and keeps it open until {@link stop}). */
  start() {
    if (this.state !== 'stopped') return;
    globalThis.addEventListener?.('online', this.onOnline);
    this.connect();
  }

  /** Closes for good: no reconnects; pending sends fail. */
  stop() {
    this.setState('stopped');
    globalThis.removeEventListener?.('online', this.onOnline);
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.renew);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    for (const [id, item] of this.outbox) {
      clearTimeout(item.timer);
      for (let waiting = item; waiting; waiting = waiting.next) waiting.reject(new SendError('stopped', 'the client was stopped'));
      this.outbox.delete(id);
    }
    this.rejectWaiting('stopped');
    this.positions.clear();
    this.editPoints.clear();
  }

  /** Skips the backoff wait (a "retry now" button, the browser coming back online). */
  reconnectNow() {
    if (this.state === 'connecting') this.nudged = true; // if this attempt fails, retry at once
    if (this.state !== 'offline') return;
    clearTimeout(this.timers.retry);
    this.connect();
  }

  get online() {
    return this.state === 'online';
  }

  /**
   * Sends a message and resolves with the stored message (its ack). Retries with the same
   * `clientMsgId` on timeouts and dropped connections; waits while offline. `attachmentId`: an
   * uploaded image the message carries (then `content`, its caption, may be empty).
   * @returns {Promise<object>} the MessageDto
   */
  sendMessage({ chatId, content, clientMsgId = uuid(), replyTo, attachmentId }) {
    if (this.outbox.has(clientMsgId)) return this.outbox.get(clientMsgId).promise;
    const frame = { type: 'send_message', chatId, clientMsgId, content };
    if (replyTo != null) frame.replyTo = replyTo;
    if (attachmentId != null) frame.attachmentId = attachmentId;
    return this.enqueue(clientMsgId, frame);
  }

  /**
   * Replaces the content of one of the user's messages. Resolves with the message as it is now
   * (`editedAt`, `editSeq`); rejects with a SendError: `forbidden` (not theirs), `message_deleted`,
   * `empty_message`, `content_too_long`, `not_found`, `edit_conflict` (the message no longer reads
   * `replaces`: it was edited meanwhile). With `replaces` — the content the user edited — the edit
   * waits while offline and is retried after timeouts and dropped connections, like a send: the
   * server refuses it rather than undo a newer edit. Without it, `disconnected`/`timeout` reject at
   * once (such an edit sent again later could undo a newer one). `signal` (an AbortSignal)
   * withdraws a queued edit that has not gone out yet (rejecting with `aborted`); one that has
   * is not called back.
   * @returns {Promise<object>} the MessageDto
   */
  editMessage({ chatId, seq, content, replaces, signal }) {
    const frame = { type: 'edit_message', chatId, seq, content };
    if (replaces === undefined) return this.request(frame, this.ackTimeoutMs).then((answer) => answer.message);
    const promise = this.enqueue(`edit ${uuid()}`, { ...frame, replaces });
    signal?.addEventListener('abort', () => this.withdraw(promise), { once: true });
    return promise;
  }

  /**
   * Deletes a message: the user's own, or anyone's in a group they own or administer. Resolves
   * with what is left of it (`deletedAt` set, `content` ""); rejects like {@link editMessage}.
   * Waits while offline and is retried like a send: deleting a deleted message answers the same.
   * @returns {Promise<object>} the MessageDto
   */
  deleteMessage({ chatId, seq }) {
    return this.enqueue(`delete ${uuid()}`, { type: 'delete_message', chatId, seq });
  }

  /**
   * Adds the user's reaction `emoji` (exactly one emoji) to a message. Resolves with the message as
   * it is now (`reactions`, `editSeq`); rejects like {@link editMessage}, with `validation_failed`
   * (`fields.emoji`: not one emoji, or one more different emoji than a message may carry),
   * `message_deleted`, `forbidden` (not a participant) or `not_found`. Waits while offline and is
   * retried like a send (giving a reaction twice answers the same). A later change of the same
   * emoji on the same message replaces this one if it has not gone out yet (both then resolve
   * with its answer), and otherwise goes out once this one is answered.
   * @returns {Promise<object>} the MessageDto
   */
  addReaction({ chatId, seq, emoji }) {
    return this.enqueueLatest(`react ${chatId} ${seq} ${emoji}`, { type: 'add_reaction', chatId, seq, emoji });
  }

  /** Takes the user's reaction `emoji` back; resolves, rejects and waits like {@link addReaction}. */
  removeReaction({ chatId, seq, emoji }) {
    return this.enqueueLatest(`react ${chatId} ${seq} ${emoji}`, { type: 'remove_reaction', chatId, seq, emoji });
  }

  /** Says the user has read `chatId` up to `seq`. Fire and forget; a `read` event follows. */
  markAsRead(chatId, seq) {
    return this.sendFrame({ type: 'mark_as_read', chatId, seq });
  }

  /** `typing_start` / `typing_stop`; repeat `typing(chatId, true)` every few seconds while typing. */
  typing(chatId, typing) {
    return this.sendFrame({ type: typing ? 'typing_start' : 'typing_stop', chatId });
  }

  /**
   * Starts following a chat's live messages from `seq` (its messages above `seq` are delivered as
   * `message` events); e.g. after loading its history from REST. `editSeq`: the chat's
   * `lastEditSeq` that history was read at; a reconnect asks for the changes after it (0: every
   * changed message, which is never too few).
   */
  track(chatId, seq, editSeq = 0) {
    if (this.positions.has(chatId)) return;
    this.positions.set(chatId, seq);
    this.editPoints.set(chatId, editSeq);
  }

  // --- connection -----------------------------------------------------------------------------

  async connect() {
    this.setState('connecting');
    const token = await this.tokenOrStop(this.authRejected);
    if (!token || this.state !== 'connecting') return;
    this.token = token;
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let authed = false;
    ws.onopen = () => {
      const frame = { type: 'auth', token };
      // Resume only what we know; chats new to us are followed from their `ready.lastSeq`.
      if (this.positions.size > 0) {
        frame.resume = Object.fromEntries(this.positions);
        const editsAfter = [...this.positions.keys()].filter((id) => this.editPoints.has(id)).map((id) => [id, this.editPoints.get(id)]);
        if (editsAfter.length > 0) frame.editsAfter = Object.fromEntries(editsAfter);
      }
      ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === 'ready') authed = true;
      this.handle(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.timers.ping);
      clearTimeout(this.timers.renew);
      this.rejectWaiting('disconnected');
      for (const item of this.outbox.values()) clearTimeout(item.timer);
      if (this.state === 'stopped') return;
      if (event.code === 4001 && !authed) {
        // The token was refused: one more try with a refreshed token, then give up.
        if (this.authRejected) {
          this.setState('stopped');
          this.emit('auth-failed', {});
          return;
        }
        this.authRejected = true;
        this.connect();
        return;
      }
      this.scheduleReconnect({ closeCode: event.code });
    };
  }

  async tokenOrStop(forceRefresh) {
    let token = null;
    try {
      token = await this.getToken({ forceRefresh });
    } catch {
      // The session service is unreachable: that is being offline.
      this.scheduleReconnect();
      return null;
    }
    if (!token) {
      this.stop();
      this.emit('auth-failed', {});
    }
    return token;
  }

  /** `closeCode`: how the server closed the last connection, if it did (4029: too many of the user's). */
  scheduleReconnect({ closeCode } = {}) {
    if (this.state === 'stopped') return;
    this.failures += 1;
    // 0.5 s, 1 s, 2 s … capped at 30 s, with full jitter on the upper half.
    const base = Math.min(30000, 500 * 2 ** (this.failures - 1));
    const delay = this.nudged ? 0 : base / 2 + Math.random() * (base / 2);
    this.nudged = false;
    const retryAt = Date.now() + delay;
    this.setState('offline', { retryAt, attempt: this.failures, closeCode });
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit('status', { state, ...extra });
  }

  sendFrame(frame) {
    if (!this.ws || this.state !== 'online') return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame with a `req` and resolves with its answer (`ack`, `pong`…) or rejects on `error`. */
  request(frame, timeoutMs) {
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(req);
        reject(new SendError('timeout', 'no answer in time'));
      }, timeoutMs);
      this.waiting.set(req, { resolve, reject, timer });
      if (!this.sendFrame({ ...frame, req })) {
        clearTimeout(timer);
        this.waiting.delete(req);
        reject(new SendError('disconnected', 'not connected'));
      }
    });
  }

  rejectWaiting(code) {
    for (const [req, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new SendError(code, code));
      this.waiting.delete(req);
    }
  }

  startPinging() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      const ws = this.ws;
      this.request({ type: 'ping' }, 10000).catch((e) => {
        // No pong: the connection is dead even if the socket has not noticed. Drop it.
        if (e.code === 'timeout' && ws && ws === this.ws) ws.close(4000, 'no pong');
      });
    }, this.pingIntervalMs);
  }

  // --- the token of the open connection -------------------------------------------------------

  /**
   * Hands the open connection a fresh token now, e.g. after a profile change: the token carries
   * the user's name, and the server tells their chats of a new one.
   */
  renewNow() {
    if (!this.ws) return Promise.resolve(); // a new connection authenticates with a fresh token anyway
    clearTimeout(this.timers.renew);
    return this.renewToken({ forceRefresh: true });
  }

  /** Plans the renewal of the connection's token ahead of `expiresAt`, the server's deadline. */
  scheduleRenewal(expiresAt) {
    clearTimeout(this.timers.renew);
    const deadline = Date.parse(expiresAt ?? '');
    if (!Number.isFinite(deadline)) return; // a server that does not close on expiry
    this.tokenDeadline = deadline;
    const left = deadline - Date.now();
    if (left < 2000) return; // too late: the server closes, and the reconnect brings a fresh token
    const delay = left > 2 * RENEW_MARGIN_MS ? left - RENEW_MARGIN_MS : left / 2;
    this.timers.renew = setTimeout(() => this.renewToken(), Math.min(delay, 2 ** 31 - 1));
  }

  /**
   * Sends a fresh token on the open connection. If none is had before the deadline (user-service
   * unreachable), the server closes with 4001 and the reconnect asks for a token again.
   */
  async renewToken({ forceRefresh = false } = {}) {
    const ws = this.ws;
    let answer = null;
    try {
      let token = await this.getToken({ forceRefresh });
      if (token && token === this.token && !forceRefresh) token = await this.getToken({ forceRefresh: true });
      if (token && token !== this.token && ws && ws === this.ws) {
        answer = await this.request({ type: 'auth', token }, 10000);
        this.token = token;
      }
    } catch {
      // No token or no answer: try again below while the current token lasts.
    }
    if (!ws || ws !== this.ws) return; // this connection ended: the next one has its own token
    if (answer) {
      this.scheduleRenewal(answer.tokenExpiresAt);
      this.emit('token-renewed', { expiresAt: answer.tokenExpiresAt });
      return;
    }
    const left = this.tokenDeadline - Date.now();
    if (left > 2000) this.timers.renew = setTimeout(() => this.renewToken(), Math.min(5000, left / 2));
  }

  // --- sending --------------------------------------------------------------------------------

  /**
   * Puts `frame` in the outbox under `key` and sends it when connected; resolves with the message
   * of its `ack`. Only for frames the server answers the same way when they come twice.
   */
  enqueue(key, frame) {
    const item = outboxItem(key, frame);
    this.outbox.set(key, item);
    this.transmit(item);
    return item.promise;
  }

  /**
   * Like {@link enqueue}, for frames of which only the latest of a key counts (a reaction given or
   * taken back). One of the key that has not gone out yet takes the new frame. One that has may
   * still be applied (a retry after a lost answer), so the new frame waits for its answer: sent at
   * once, it could be applied first and then undone.
   */
  enqueueLatest(key, frame) {
    const current = this.outbox.get(key);
    if (!current) return this.enqueue(key, frame);
    const unsent = current.attempts === 0 ? current : current.next;
    if (unsent) {
      unsent.frame = frame;
      return unsent.promise;
    }
    current.next = outboxItem(key, frame);
    return current.next.promise;
  }

  /**
   * Takes the outbox item of `promise` back if it never went out. One that did (also on a
   * connection that dropped since) may have been applied, so it goes on until answered.
   */
  withdraw(promise) {
    for (const item of this.outbox.values()) {
      if (item.promise !== promise || item.attempts > 0) continue;
      this.finish(item);
      item.reject(new SendError('aborted', 'withdrawn before it was sent'));
    }
  }

  /** One attempt of an outbox item, if connected; otherwise it waits for the next `online`. */
  transmit(item) {
    if (this.state !== 'online' || this.outbox.get(item.key) !== item) return;
    item.attempts += 1;
    this.request(item.frame, this.ackTimeoutMs).then(
      (answer) => this.settle(item, answer.message),
      (error) => {
        if (this.outbox.get(item.key) !== item) return; // settled meanwhile by new_message
        if (error.code === 'rate_limited') {
          // Nothing was stored and nothing failed: the user is sending faster than the server
          // allows, so this one waits as long as asked, without using up an attempt.
          item.attempts -= 1;
          item.timer = setTimeout(() => this.transmit(item), 1000 * (error.retryAfter ?? 1));
          return;
        }
        const retryable = !FINAL_CODES.has(error.code);
        if (retryable && item.attempts < this.maxSendAttempts) {
          // Disconnects are retried by `flushOutbox` after the reconnect; timeouts, `internal` and
          // `unavailable` (the database unreachable) here, after a short pause.
          if (error.code !== 'disconnected' && error.code !== 'stopped') {
            item.timer = setTimeout(() => this.transmit(item), 500 * item.attempts);
          }
          return;
        }
        this.finish(item);
        item.reject(error instanceof SendError ? error : new SendError('internal', String(error)));
      },
    );
  }

  settle(item, message) {
    // By identity, not by id: a late ack of an earlier send with the same clientMsgId must not
    // settle (and drop) a newer send of it that is still waiting for its own answer.
    if (this.outbox.get(item.key) !== item) return;
    this.finish(item);
    item.resolve(message);
  }

  /** Takes an answered item out of the outbox; the frame of its key that waited for it goes next. */
  finish(item) {
    this.outbox.delete(item.key);
    clearTimeout(item.timer);
    if (!item.next) return;
    this.outbox.set(item.key, item.next);
    this.transmit(item.next);
  }

  flushOutbox() {
    for (const item of this.outbox.values()) {
      clearTimeout(item.timer);
      this.transmit(item);
    }
  }

  // --- receiving ------------------------------------------------------------------------------

  handle(frame) {
    switch (frame.type) {
      case 'ready':
        return this.onReady(frame);
      case 'resumed':
        // The changes were sent up to these points. Never lower one: live updates may have moved it on.
        for (const [chatId, editSeq] of Object.entries(frame.edits ?? {})) {
          if (this.positions.has(chatId)) this.editPoints.set(chatId, Math.max(editSeq, this.editPoints.get(chatId) ?? 0));
        }
        if (frame.req === undefined) this.goOnline();
        return;
      case 'new_message':
        return this.onMessage(frame.message);
      case 'message_updated':
        return this.onUpdate(frame.message);
      case 'ack':
      case 'pong':
      case 'authenticated':
        return this.answer(frame.req, frame);
      case 'error':
        if (frame.req !== undefined && this.waiting.has(frame.req)) {
          const w = this.waiting.get(frame.req);
          this.waiting.delete(frame.req);
          clearTimeout(w.timer);
          w.reject(new SendError(frame.code, frame.message, frame.fields, frame.retryAfter));
        } else {
          this.emit('server-error', { code: frame.code, message: frame.message, fields: frame.fields });
        }
        return;
      case 'messages_read':
        return this.emit('read', { chatId: frame.chatId, userId: frame.userId, seq: frame.seq });
      case 'messages_delivered':
        return this.emit('delivered', { chatId: frame.chatId, seq: frame.seq });
      case 'user_typing':
        return this.emit('typing', { chatId: frame.chatId, userId: frame.userId, typing: frame.typing });
      case 'presence':
        return this.emit('presence', { chatId: frame.chatId, userId: frame.userId, online: !!frame.online });
      case 'conversation_created':
        this.follow(frame.chat);
        return this.emit('chat', { chat: frame.chat, online: frame.online ?? null });
      case 'participant_updated': {
        const { chatId, userId, displayName, avatarUrl } = frame;
        return this.emit('participant', { chatId, userId, displayName, avatarUrl: avatarUrl ?? null });
      }
      case 'participant_joined':
      case 'participant_left':
        return this.emit('member', { chatId: frame.chatId, userId: frame.userId, joined: frame.type === 'participant_joined' });
      case 'conversation_left':
        this.forget(frame.chatId);
        return this.emit('left', { chatId: frame.chatId });
      case 'conversation_updated':
        return this.emit('chat-updated', { chatId: frame.chatId, title: frame.title });
      case 'participant_role_changed':
        return this.emit('role', { chatId: frame.chatId, userId: frame.userId, role: frame.role });
      default:
        return undefined; // newer servers may send more; ignore what we do not know
    }
  }

  onReady(frame) {
    this.authRejected = false;
    this.user = frame.user;
    this.scheduleRenewal(frame.tokenExpiresAt);
    const resuming = this.positions.size > 0;
    const known = new Set(frame.chats.map((c) => c.id));
    for (const id of [...this.positions.keys()]) {
      if (!known.has(id)) {
        this.forget(id);
        this.emit('left', { chatId: id });
      }
    }
    for (const chat of frame.chats) this.follow(chat);
    this.emit('ready', {
      user: frame.user,
      chats: frame.chats,
      online: frame.online ?? null,
      resumed: resuming,
      readReceiptsMaxChatMembers: frame.readReceiptsMaxChatMembers ?? null,
    });
    // With a resume, the backlog and `resumed` come next; only then is the connection caught up.
    if (!resuming) this.goOnline();
  }

  /**
   * A chat new to us is followed from where it stands: its messages after `lastSeq`, its changes
   * after `lastEditSeq`. A chat we know keeps its own points: the resume brings what it missed.
   */
  follow(chat) {
    if (this.positions.has(chat.id)) return;
    this.positions.set(chat.id, chat.lastSeq);
    this.editPoints.set(chat.id, chat.lastEditSeq ?? 0);
  }

  forget(chatId) {
    this.positions.delete(chatId);
    this.editPoints.delete(chatId);
  }

  goOnline() {
    this.failures = 0;
    this.setState('online');
    this.startPinging();
    this.flushOutbox();
  }

  onMessage(message) {
    const position = this.positions.get(message.chatId) ?? 0;
    if (message.seq <= position) return; // already delivered: never twice
    this.positions.set(message.chatId, message.seq);
    const item = this.outbox.get(message.clientMsgId);
    if (item?.frame.type === 'send_message' && item.frame.chatId === message.chatId && this.user && message.senderId === this.user.id) {
      this.settle(item, message);
    }
    this.emit('message', { message });
  }

  /**
   * An update moves the chat's edit point only when it is the very next change: one out of order
   * leaves a gap below it, and the next resume must still ask from before that gap.
   */
  onUpdate(message) {
    const point = this.editPoints.get(message.chatId);
    if (point !== undefined && message.editSeq === point + 1) this.editPoints.set(message.chatId, message.editSeq);
    this.emit('message-updated', { message });
  }

  answer(req, frame) {
    const w = this.waiting.get(req);
    if (!w) return;
    this.waiting.delete(req);
    clearTimeout(w.timer);
    w.resolve(frame);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
