// conversation.js — one chat: its messages grouped by day and sender, delivery states, older pages
// on scroll-up, the unread divider, typing, and the composer.

import { h, replaceChildren } from './dom.js';
import { avatar } from './chat-list.js';
import { clock, dayKey, dayLabel, sendErrorText } from './format.js';

/** Messages from one sender closer than this share a group. */
const GROUP_GAP_MS = 5 * 60_000;
/** Within this many pixels of the bottom counts as "at the bottom". */
const BOTTOM_SLACK = 80;
/** Repeat typing_start this often while typing (the server forgets it after 6 s). */
const TYPING_REPEAT_MS = 3000;
const TYPING_IDLE_MS = 4000;

export class ConversationView {
  /**
   * @param {object} deps
   * @param {HTMLElement} deps.root the pane to render into
   * @param {import('../store.js').Store} deps.store
   * @param {import('../api.js').Api} deps.api
   * @param {import('../converge-client.js').ConvergeClient} deps.client
   * @param {(clientMsgId?: string, chatId?: string, content?: string) => void} deps.send
   * @param {() => void} deps.onBack
   * @param {number} deps.maxChars
   */
  constructor(deps) {
    Object.assign(this, deps);
    this.chatId = null;
    /** chatId → the seq last sent in mark_as_read, so re-renders do not repeat it. */
    this.readRequested = new Map();
    /** chatId → unsent text, kept while you look at other chats. */
    this.drafts = new Map();
    this.loadingOlder = false;
    this.typingSentAt = 0;
    this.typingIdle = null;
    this.log.addEventListener('scroll', () => this.onScroll());
  }

  get log() {
    if (!this._log) {
      // Not a live region: it is rebuilt on every change, which a screen reader would read out
      // whole. New messages are announced one by one by the app's announcer instead.
      this._log = h('div', { class: 'log', role: 'log', 'aria-label': 'Messages', 'aria-live': 'off', tabindex: '0' });
    }
    return this._log;
  }

  /** Shows a chat: loads its latest page (enough to reach the first unread) and scrolls there. */
  async open(chatId) {
    this.stopTyping();
    const chat = this.store.chats.get(chatId);
    this.chatId = chatId;
    if (!chat) {
      replaceChildren(this.root, h('div', { class: 'placeholder' }, 'Choose a chat, or start a new one.'));
      return;
    }
    const myRead = this.store.myReadSeq(chat);
    this.unreadFrom = chat.lastSeq > myRead ? myRead + 1 : null;
    this.buildFrame(chat);
    this.render({ stick: 'bottom' });
    const hist = this.store.history(chatId);
    try {
      if (!hist.loaded) this.store.addPage(chatId, await this.api.history(chatId), { older: false });
      for (let i = 0; i < 20 && this.unreadFrom && hist.hasOlder && hist.oldest > this.unreadFrom; i++) {
        this.store.addPage(chatId, await this.api.history(chatId, { before: hist.oldest }), { older: true });
      }
    } catch (e) {
      this.showLoadError(e);
    }
    if (this.chatId !== chatId) return;
    this.render({ stick: this.unreadFrom ? 'unread' : 'bottom' });
    this.markRead();
    this.composer.focus({ preventScroll: true });
  }

  close() {
    this.stopTyping();
    this.chatId = null;
  }

  buildFrame(chat) {
    const other = chat.kind === 'direct' ? this.store.others(chat)[0] : null;
    this.title = h('h2', { class: 'conv-title', id: 'conv-title' });
    this.subtitle = h('p', { class: 'conv-subtitle', 'aria-live': 'polite' });
    this.typingLine = h('p', { class: 'typing', 'aria-live': 'polite' });
    this.jump = h('button', { type: 'button', class: 'jump', hidden: true, onclick: () => this.jumpToUnread() }, 'Jump to first unread');
    this.below = h(
      'button',
      { type: 'button', class: 'jump below', hidden: true, onclick: () => this.scrollToEnd() },
      h('span', { 'aria-hidden': 'true' }, '↓ '),
      'New messages',
    );
    this.counter = h('span', { class: 'counter', 'aria-live': 'polite' });
    this.composer = h('textarea', {
      class: 'composer-input',
      rows: '1',
      placeholder: 'Message',
      'aria-label': `Message ${this.store.title(chat)}`,
      enterkeyhint: 'send',
      onkeydown: (e) => this.onKey(e),
      oninput: () => this.onInput(),
    });
    const form = h(
      'form',
      { class: 'composer', onsubmit: (e) => (e.preventDefault(), this.submit()) },
      this.composer,
      this.counter,
      h('button', { type: 'submit', class: 'send', 'aria-label': 'Send' }, h('span', { 'aria-hidden': 'true' }, '➤')),
    );
    replaceChildren(
      this.root,
      h(
        'section',
        { class: 'conversation', 'aria-labelledby': 'conv-title' },
        h(
          'header',
          { class: 'conv-header' },
          h('button', { type: 'button', class: 'back', 'aria-label': 'Back to chats', onclick: () => this.onBack() }, '‹'),
          avatar({ id: other?.userId ?? chat.id, name: this.store.title(chat), url: other?.avatarUrl }),
          h('div', { class: 'conv-heading' }, this.title, this.subtitle),
        ),
        h('div', { class: 'log-wrap' }, this.log, this.jump, this.below),
        this.typingLine,
        form,
      ),
    );
    this.composer.value = this.drafts.get(chat.id) ?? '';
    this.updateCounter();
    this.lastSeen = chat.lastSeq;
    this.renderHeader();
  }

  renderHeader() {
    const chat = this.store.chats.get(this.chatId);
    if (!chat) return;
    this.title.textContent = this.store.title(chat);
    const others = this.store.others(chat);
    if (chat.kind === 'group') {
      this.subtitle.textContent = `${chat.participants.length} members: ${chat.participants.map((p) => (p.userId === this.store.me?.id ? 'you' : p.displayName)).join(', ')}`;
    } else {
      const online = others[0] && this.store.presence.get(others[0].userId);
      this.subtitle.textContent = online === undefined ? 'Direct chat' : online ? 'Online' : 'Offline';
    }
  }

  // --- messages -------------------------------------------------------------------------------

  /** Re-renders the log. `stick`: 'bottom', 'unread', 'keep-bottom-distance', or keep scrollTop. */
  render({ stick } = {}) {
    const chat = this.store.chats.get(this.chatId);
    if (!chat) return;
    const log = this.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < BOTTOM_SLACK;
    const fromBottom = log.scrollHeight - log.scrollTop;
    const top = log.scrollTop;
    const hist = this.store.history(this.chatId);
    const items = [
      ...this.store.messagesOf(this.chatId),
      ...this.store.pendingOf(this.chatId).map((p) => ({ ...p, senderId: this.store.me?.id, pending: true })),
    ];
    const children = [];
    if (hist.loaded && hist.hasOlder) children.push(h('p', { class: 'older' }, 'Loading earlier messages…'));
    if (hist.loaded && !hist.hasOlder && items.length === 0) children.push(h('p', { class: 'older' }, 'No messages yet. Say hello!'));
    let day = null;
    let group = null;
    let prev = null;
    const lastMine = [...items].reverse().find((m) => m.senderId === this.store.me?.id && !m.pending);
    for (const m of items) {
      const mDay = dayKey(m.createdAt);
      let split = false;
      if (mDay !== day) {
        children.push(h('div', { class: 'day', role: 'separator' }, h('span', {}, dayLabel(m.createdAt))));
        day = mDay;
        split = true;
      }
      if (!m.pending && m.seq === this.unreadFrom) {
        children.push(h('div', { class: 'unread-divider', role: 'separator', id: 'first-unread' }, h('span', {}, 'New messages')));
        split = true;
      }
      if (split || !prev || prev.senderId !== m.senderId || Date.parse(m.createdAt) - Date.parse(prev.createdAt) > GROUP_GAP_MS) {
        group = this.group(chat, m.senderId);
        children.push(group.el);
      }
      group.body.append(this.bubble(chat, m, m === lastMine));
      prev = m;
    }
    replaceChildren(log, children);
    if (stick === 'bottom' || (stick !== 'keep-bottom-distance' && stick !== 'unread' && atBottom)) {
      log.scrollTop = log.scrollHeight;
    } else if (stick === 'unread') {
      this.jumpToUnread();
    } else if (stick === 'keep-bottom-distance') {
      log.scrollTop = log.scrollHeight - fromBottom;
    } else {
      log.scrollTop = top;
    }
    // Someone wrote while you were reading further up: offer the way down.
    if (chat.lastSeq > (this.lastSeen ?? 0) && !this.atBottom()) this.below.hidden = false;
    if (this.atBottom()) this.lastSeen = chat.lastSeq;
    this.updateJump();
  }

  atBottom() {
    const log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < BOTTOM_SLACK;
  }

  scrollToEnd() {
    this.log.scrollTop = this.log.scrollHeight;
    this.onScroll();
  }

  group(chat, senderId) {
    const mine = senderId === this.store.me?.id;
    const p = this.store.participant(chat.id, senderId);
    const name = p?.displayName ?? this.store.nameOf(senderId);
    const body = h('div', { class: 'group-body' });
    const el = h(
      'div',
      { class: `group ${mine ? 'mine' : 'theirs'}`, dataset: { sender: senderId } },
      !mine && chat.kind === 'group' ? avatar({ id: senderId, name, url: p?.avatarUrl }) : null,
      h('div', { class: 'group-col' }, !mine && chat.kind === 'group' ? h('p', { class: 'sender' }, name) : null, body),
    );
    return { el, body };
  }

  bubble(chat, m, isLastMine) {
    const mine = m.senderId === this.store.me?.id;
    const attrs = { class: `msg${m.pending ? ` pending ${m.state}` : ''}`, dataset: { clientMsgId: m.clientMsgId } };
    if (!m.pending) attrs.dataset.seq = String(m.seq);
    const parts = [];
    // Image messages (uploads come later): shown when the server gives an https URL or a path on
    // this origin (not a protocol-relative `//host/…`).
    if (m.imageUrl && /^(https:\/\/|\/(?!\/))/i.test(m.imageUrl)) {
      parts.push(h('img', { class: 'msg-image', src: m.imageUrl, alt: 'Image', loading: 'lazy', referrerpolicy: 'no-referrer' }));
    }
    if (m.content) parts.push(h('p', { class: 'text' }, m.content));
    const meta = h('span', { class: 'meta' }, h('time', { datetime: m.createdAt }, clock(m.createdAt)));
    if (mine) meta.append(this.status(chat, m, isLastMine));
    parts.push(meta);
    if (m.pending && m.state === 'failed') {
      parts.push(
        h(
          'p',
          { class: 'send-error', role: 'alert' },
          sendErrorText(m.error, this.maxChars),
          ' ',
          h('button', { type: 'button', class: 'link retry', onclick: () => this.send(m.clientMsgId) }, 'Retry'),
        ),
      );
    }
    return h('div', attrs, ...parts);
  }

  status(chat, m, isLastMine) {
    let state;
    let label;
    let icon;
    let title;
    if (m.pending) {
      state = m.state === 'failed' ? 'failed' : 'sending';
      label = state === 'failed' ? 'Not sent' : 'Sending…';
      icon = state === 'failed' ? '!' : '◷';
    } else {
      const d = this.store.deliveryOf(chat, m.seq);
      state = d.state;
      const others = this.store.others(chat).length;
      label = { sent: 'Sent', delivered: 'Delivered', read: 'Read' }[state];
      if (chat.kind === 'group' && state !== 'read' && d.readers > 0) label = `Read by ${d.readers} of ${others}`;
      if (!this.store.readsShared(chat)) {
        title = `${label}. Read receipts are not shared in groups of more than ${this.store.readReceiptsMaxChatMembers} members.`;
      }
      icon = state === 'sent' ? '✓' : '✓✓';
    }
    const showText = isLastMine || m.pending;
    return h(
      'span',
      { class: `status ${state}`, dataset: { state }, title: title ?? label, 'aria-label': label },
      h('span', { class: 'tick', 'aria-hidden': 'true' }, icon),
      showText ? h('span', { class: 'status-text', 'aria-hidden': 'true' }, label) : null,
    );
  }

  showLoadError() {
    this.log.prepend(h('p', { class: 'older error', role: 'alert' }, 'Could not load the history. It will load when the connection is back.'));
  }

  jumpToUnread() {
    const divider = this.log.querySelector('#first-unread');
    if (divider) this.log.scrollTop = divider.offsetTop - this.log.offsetTop - 8;
    else this.log.scrollTop = this.log.scrollHeight;
    this.updateJump();
  }

  updateJump() {
    const divider = this.log.querySelector('#first-unread');
    const hidden = !divider || divider.offsetTop - this.log.offsetTop >= this.log.scrollTop - 8;
    this.jump.hidden = hidden;
  }

  async onScroll() {
    this.updateJump();
    const log = this.log;
    if (this.atBottom()) {
      this.below.hidden = true;
      this.lastSeen = this.store.chats.get(this.chatId)?.lastSeq ?? this.lastSeen;
      this.markRead();
    }
    const hist = this.chatId && this.store.history(this.chatId);
    if (!hist || !hist.loaded || !hist.hasOlder || this.loadingOlder || log.scrollTop > 200) return;
    this.loadingOlder = true;
    const chatId = this.chatId;
    try {
      const page = await this.api.history(chatId, { before: hist.oldest ?? undefined });
      if (this.chatId === chatId) {
        this.store.addPage(chatId, page, { older: true });
        this.render({ stick: 'keep-bottom-distance' });
      }
    } catch {
      // Offline: the next scroll tries again.
    } finally {
      this.loadingOlder = false;
    }
  }

  /** Marks everything read when the chat is on screen and scrolled to the end. */
  markRead() {
    const chat = this.store.chats.get(this.chatId);
    if (!chat || document.visibilityState !== 'visible') return;
    const log = this.log;
    if (log.scrollHeight - log.scrollTop - log.clientHeight >= BOTTOM_SLACK) return;
    if (chat.lastSeq <= Math.max(this.store.myReadSeq(chat), this.readRequested.get(chat.id) ?? 0)) return;
    if (this.client.markAsRead(chat.id, chat.lastSeq)) this.readRequested.set(chat.id, chat.lastSeq);
  }

  // --- composing ------------------------------------------------------------------------------

  onKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    }
  }

  onInput() {
    if (!this.chatId) return;
    this.drafts.set(this.chatId, this.composer.value);
    this.updateCounter();
    if (this.composer.value.trim() === '') {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (now - this.typingSentAt > TYPING_REPEAT_MS && this.client.typing(this.chatId, true)) this.typingSentAt = now;
    clearTimeout(this.typingIdle);
    this.typingIdle = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingIdle);
    if (this.typingSentAt && this.chatId) this.client.typing(this.chatId, false);
    this.typingSentAt = 0;
  }

  submit() {
    const content = this.composer.value;
    if (!content.trim() || !this.chatId) return;
    this.stopTyping();
    this.composer.value = '';
    this.drafts.delete(this.chatId);
    this.updateCounter();
    this.unreadFrom = null;
    this.send(undefined, this.chatId, content);
    this.render({ stick: 'bottom' });
  }

  /** Shows the length near and over the limit (counted as the server counts: code points). */
  updateCounter() {
    const length = [...this.composer.value].length;
    const max = this.maxChars ?? 4000;
    this.counter.textContent = length > max * 0.9 ? `${length} / ${max}` : '';
    this.counter.classList.toggle('over', length > max);
  }

  renderTyping() {
    const names = this.store.typingNames(this.chatId);
    this.typingLine.textContent =
      names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
  }
}
