// conversation.js — one chat: its header (title, members or presence, and the button to its info),
// its messages grouped by day and sender, delivery states, older pages on scroll-up, the unread
// divider, typing, the composer (text, and an image picked, pasted or dropped on the
// conversation), editing and deleting messages (a message being edited goes into the composer,
// and a deletion is confirmed in a dialog), replies (a message quotes the one it answers, and the
// quote leads to it), and reactions: chips under a message toggle mine, and its React action opens
// a picker of common emoji. A message found by the search, or by a quote, is shown where it is in
// the history: the pages before it load, and it is scrolled to, focused and flashes.

import { h, replaceChildren } from './dom.js';
import { avatar } from './chat-list.js';
import { imageBox, openImageViewer } from './image.js';
import { openConfirm } from './confirm.js';
import { withLinks } from './links.js';
import { COMMON_EMOJI, myReactions, reactionChips, reactionPicker, withWishes } from './reactions.js';
import { IMAGE_TYPES, MAX_IMAGE_BYTES, isServicePath } from '../images.js';
import {
  FINAL_UPLOAD_CODES, changeErrorText, clock, dayKey, dayLabel, fileSize, imageProblem, listNames, reactionErrorText,
  sendErrorText, uploadErrorText,
} from './format.js';

/** Messages from one sender closer than this share a group. */
const GROUP_GAP_MS = 5 * 60_000;
/** Within this many pixels of the bottom counts as "at the bottom". */
const BOTTOM_SLACK = 80;
/** Repeat typing_start this often while typing (the server forgets it after 6 s). */
const TYPING_REPEAT_MS = 3000;
const TYPING_IDLE_MS = 4000;
/** How much of a message an action's name quotes, so a screen reader says which message it is. */
const SUMMARY_CHARS = 40;
const OFFLINE_REACTION = 'Offline: your reaction will be sent when the connection is back.';

export class ConversationView {
  /**
   * @param {object} deps
   * @param {HTMLElement} deps.root the pane to render into
   * @param {import('../store.js').Store} deps.store
   * @param {import('../api.js').Api} deps.api
   * @param {import('../converge-client.js').ConvergeClient} deps.client
   * @param {import('../images.js').ImageStore} deps.images
   * @param {(clientMsgId?: string, chatId?: string, content?: string, image?: object, replyTo?: number) => void} deps.send
   *   sends a message (with an image: {file, localUrl, width, height}; a reply to message
   *   `replyTo`), or retries `clientMsgId`
   * @param {(clientMsgId: string) => void} deps.discard gives up a failed message
   * @param {() => void} deps.onBack
   * @param {(chatId: string) => void} deps.onInfo opens the chat's info (a group's members and settings)
   * @param {number} deps.maxChars
   * @param {number} [deps.maxImageBytes]
   */
  constructor(deps) {
    Object.assign(this, deps);
    this.maxImageBytes ??= MAX_IMAGE_BYTES;
    this.chatId = null;
    /** chatId → the seq last sent in mark_as_read, so re-renders do not repeat it. */
    this.readRequested = new Map();
    /** chatId → unsent text, kept while you look at other chats. */
    this.drafts = new Map();
    /** chatId → the image picked to go with the next message: {file, localUrl, width, height}. */
    this.staged = new Map();
    /** The message being edited in the composer: {chatId, seq, original, saving}; the draft waits. */
    this.editing = null;
    /** chatId → the seq of the message the next one answers, kept with the draft. */
    this.replies = new Map();
    /** "chatId seq" of quoted messages outside the loaded history being read, each once. */
    this.quoteReads = new Set();
    /** The message whose reaction picker is open: {chatId, seq, clientMsgId, active}, `active` its Tab stop. */
    this.picking = null;
    /**
     * My reactions on their way, shown before the server answers: "chatId seq" → emoji → {on}
     * (given or taken back); each goes when its answer comes and no newer change of it is waiting.
     */
    this.wishes = new Map();
    this.loadingOlder = false;
    /** The message shown for a search: {chatId, seq, flash}; it flashes until its animation ends. */
    this.found = null;
    this.typingSentAt = 0;
    this.typingIdle = null;
    this.log.addEventListener('scroll', () => this.onScroll());
    this.listenForDrops();
  }

  get log() {
    if (!this._log) {
      // Not a live region: it is rebuilt on every change, which a screen reader would read out
      // whole. New messages are announced one by one by the app's announcer instead.
      this._log = h('div', { class: 'log', role: 'log', 'aria-label': 'Messages', 'aria-live': 'off', tabindex: '0' });
    }
    return this._log;
  }

  /**
   * Shows a chat: loads its latest page (enough to reach the first unread) and scrolls there; or,
   * with `reveal` (a seq), to that message.
   */
  async open(chatId, { reveal } = {}) {
    this.stopTyping();
    this.editing = null;
    this.picking = null;
    this.found = null;
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
    if (reveal != null) {
      await this.reveal(chatId, reveal);
      return;
    }
    this.markRead();
    this.composer.focus({ preventScroll: true });
  }

  /**
   * Goes to message `seq` of the open chat: older pages load, as scrolling up loads them, until it
   * is there (the history stays contiguous); then it is scrolled into view, focused, and flashes.
   */
  async reveal(chatId, seq) {
    if (this.chatId !== chatId) return;
    this.found = { chatId, seq, flash: true };
    const hist = this.store.history(chatId);
    // Scrolling to the top meanwhile must not load the same pages a second time.
    const scrollLoading = this.loadingOlder;
    this.loadingOlder = true;
    try {
      if (!hist.loaded) this.store.addPage(chatId, await this.api.history(chatId), { older: false });
      while (this.chatId === chatId && !hist.bySeq.has(seq) && hist.hasOlder && (hist.oldest ?? Infinity) > seq) {
        const page = await this.api.history(chatId, { before: hist.oldest ?? undefined });
        if (this.chatId !== chatId) return;
        this.store.addPage(chatId, page, { older: true });
        if (page.messages.length === 0) break;
      }
    } catch (e) {
      if (this.chatId === chatId) this.showLoadError(e);
      return;
    } finally {
      if (!scrollLoading) this.loadingOlder = false;
    }
    if (this.chatId !== chatId || this.found?.seq !== seq) return;
    this.render();
    const el = this.log.querySelector(`.msg[data-seq="${seq}"]`);
    if (!el) {
      this.say('That message is not in this chat any more.');
      return;
    }
    el.scrollIntoView({ block: 'center' });
    el.focus({ preventScroll: true });
    this.updateJump();
    this.markRead();
  }

  close() {
    this.stopTyping();
    this.editing = null;
    this.picking = null;
    this.found = null;
    this.chatId = null;
  }

  buildFrame(chat) {
    this.headerAvatar = h('span', { class: 'avatar' });
    this.headerAvatarKey = null;
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
      onpaste: (e) => this.onPaste(e),
    });
    // The picker itself stays out of sight and out of the tab order: the button opens it.
    this.picker = h('input', {
      type: 'file',
      accept: IMAGE_TYPES.join(','),
      class: 'file-picker',
      hidden: true,
      tabindex: '-1',
      'aria-label': 'Image to send',
      onchange: () => {
        const files = [...this.picker.files];
        this.picker.value = ''; // picking the same file again still fires `change`
        this.stageFrom(files);
      },
    });
    this.notice = h('p', { class: 'composer-notice', role: 'alert' });
    this.stagedView = h('div', { class: 'staged', hidden: true });
    this.editingBar = h('div', { class: 'editing-bar', id: 'editing-bar', hidden: true });
    this.replyBar = h('div', { class: 'reply-bar', id: 'reply-bar', hidden: true });
    this.replyBarKey = null;
    this.attachButton = h(
      'button',
      { type: 'button', class: 'attach', 'aria-label': 'Attach image', title: 'Attach image', onclick: () => this.picker.click() },
      h('span', { class: 'attach-icon', 'aria-hidden': 'true' }),
    );
    this.sendButton = h('button', { type: 'submit', class: 'send', 'aria-label': 'Send' });
    const form = h(
      'form',
      { class: 'composer', onsubmit: (e) => (e.preventDefault(), this.submit()) },
      this.attachButton,
      this.picker,
      this.composer,
      this.counter,
      this.sendButton,
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
          this.headerAvatar,
          h('div', { class: 'conv-heading' }, this.title, this.subtitle),
          h(
            'button',
            {
              type: 'button',
              class: 'info-button',
              'aria-label': chat.kind === 'group' ? 'Group info' : 'Chat info',
              title: chat.kind === 'group' ? 'Group info' : 'Chat info',
              'aria-haspopup': 'dialog',
              onclick: () => this.onInfo(chat.id),
            },
            h('span', { 'aria-hidden': 'true' }, 'i'),
          ),
        ),
        h('div', { class: 'log-wrap' }, this.log, this.jump, this.below),
        this.typingLine,
        h('div', { class: 'composer-tray' }, this.notice, this.editingBar, this.replyBar, this.stagedView),
        form,
      ),
    );
    this.composer.value = this.drafts.get(chat.id) ?? '';
    this.updateCounter();
    this.renderEditing();
    this.lastSeen = chat.lastSeq;
    this.renderHeader();
  }

  renderHeader() {
    const chat = this.store.chats.get(this.chatId);
    if (!chat) return;
    const title = this.store.title(chat);
    this.title.textContent = title;
    // A group renamed, a member renamed: the picture's initials and the composer's name follow.
    const label = `Message ${title}`;
    if (this.composer.getAttribute('aria-label') !== label) this.composer.setAttribute('aria-label', label);
    const other = chat.kind === 'direct' ? this.store.others(chat)[0] : null;
    const face = { id: other?.userId ?? chat.id, name: title, url: other?.avatarUrl };
    const faceKey = JSON.stringify(face);
    if (faceKey !== this.headerAvatarKey) {
      const fresh = avatar(face);
      this.headerAvatar.replaceWith(fresh);
      this.headerAvatar = fresh;
      this.headerAvatarKey = faceKey;
    }
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
    if (this.editing && this.store.history(this.chatId).bySeq.get(this.editing.seq)?.deletedAt) {
      // Deleted meanwhile (by an admin, or on another device): there is nothing left to edit.
      this.stopEditing();
      this.say('The message you were editing was deleted.');
    }
    if (this.picking) {
      const picked = this.picking.chatId === this.chatId && this.store.history(this.chatId).bySeq.get(this.picking.seq);
      if (!picked || picked.deletedAt) this.picking = null; // nothing left to react to
    }
    this.renderReply(); // what it answers may have changed
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
    const lastMine = [...items].reverse().find((m) => m.senderId === this.store.me?.id && !m.pending && !m.deletedAt);
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
    const focused = this.focusedControl();
    replaceChildren(log, children);
    this.refocus(focused);
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

  /**
   * The control of a message that has focus (a picture, Retry, a reaction…), to find again after a
   * re-render; `emoji` tells a message's reactions apart.
   */
  focusedControl() {
    const el = document.activeElement;
    const msg = el && el !== this.log && this.log.contains(el) ? el.closest('.msg') : null;
    if (!msg || !el.classList[0]) return null;
    return { clientMsgId: msg.dataset.clientMsgId, kind: el.classList[0], emoji: el.dataset.emoji };
  }

  /**
   * Focus goes back to the control. From a reaction that is gone (its last one taken back), to the
   * message's React; from one gone with its message (deleted meanwhile), to the log.
   */
  refocus(control) {
    if (!control) return;
    let found = this.control(control);
    if (!found && control.emoji) {
      found = this.control({ clientMsgId: control.clientMsgId, kind: 'react-message' }) ?? this.log;
    }
    found?.focus({ preventScroll: true });
  }

  /**
   * A message's control in the log as it is now: `kind` is its first class (`msg`: the message
   * itself, as focused when found by the search), `emoji` its reaction.
   */
  control({ clientMsgId, kind, emoji }) {
    const msg = this.log.querySelector(`.msg[data-client-msg-id="${CSS.escape(clientMsgId ?? '')}"]`);
    if (kind === 'msg') return msg?.hasAttribute('tabindex') ? msg : null;
    const which = emoji ? `[data-emoji="${CSS.escape(emoji)}"]` : '';
    return msg?.querySelector(`.${CSS.escape(kind)}${which}`) ?? null;
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
    const time = h('time', { datetime: m.createdAt }, clock(m.createdAt));
    if (m.deletedAt) {
      // What is left of a deleted message: its place, and when it was sent. Nothing to act on.
      return h(
        'div',
        { class: 'msg deleted', dataset: { clientMsgId: m.clientMsgId, seq: String(m.seq) } },
        h('p', { class: 'tombstone' }, 'Message deleted'),
        h('span', { class: 'meta' }, time),
      );
    }
    const picture = this.picture(chat, m, mine);
    const editing = this.editing && !m.pending && this.editing.chatId === chat.id && this.editing.seq === m.seq;
    const found = !m.pending && this.found?.chatId === chat.id && this.found.seq === m.seq;
    const attrs = {
      class: `msg${m.pending ? ` pending ${m.state}` : ''}${picture ? ' has-image' : ''}${editing ? ' editing' : ''}${found && this.found.flash ? ' found' : ''}`,
      dataset: { clientMsgId: m.clientMsgId },
    };
    if (found) {
      // Focusable, so that focus can be put on it (and found again after a re-render).
      attrs.tabindex = '-1';
      attrs.onanimationend = (e) => {
        if (e.animationName !== 'found-flash') return;
        if (this.found?.seq === m.seq) this.found.flash = false;
        e.currentTarget.classList.remove('found');
      };
    }
    if (!m.pending) attrs.dataset.seq = String(m.seq);
    const parts = [m.replyTo != null ? this.quote(chat, m) : null, picture];
    if (m.content) parts.push(h('p', { class: 'text' }, withLinks(m.content)));
    const meta = h('span', { class: 'meta' }, this.actions(chat, m));
    if (m.editedAt) meta.append(h('span', { class: 'edited', title: `Edited ${clock(m.editedAt)}` }, '(edited)'));
    meta.append(time);
    if (mine) meta.append(this.status(chat, m, isLastMine));
    parts.push(meta);
    if (!m.pending) {
      parts.push(this.emojiPicker(chat, m));
      parts.push(
        reactionChips({
          reactions: this.reactionsShown(chat, m),
          me: this.store.me?.id,
          nameOf: (id) => this.store.participant(chat.id, id)?.displayName ?? this.store.nameOf(id),
          onToggle: (emoji, on) => this.react(chat.id, m.seq, emoji, on),
          unsent: this.wishes.get(`${chat.id} ${m.seq}`),
        }),
      );
    }
    if (m.pending && m.state === 'failed') {
      // An upload the server refused for the file itself cannot succeed again: no Retry then.
      const uploadFailed = m.image && !m.image.attachmentId;
      const retryable = !(uploadFailed && FINAL_UPLOAD_CODES.has(m.error?.code));
      parts.push(
        h(
          'p',
          { class: 'send-error', role: 'alert' },
          uploadFailed ? uploadErrorText(m.error) : sendErrorText(m.error, this.maxChars),
          ' ',
          retryable ? h('button', { type: 'button', class: 'link retry', onclick: () => this.send(m.clientMsgId) }, 'Retry') : null,
          retryable ? ' ' : null,
          h('button', { type: 'button', class: 'link discard', onclick: () => this.discard(m.clientMsgId) }, 'Remove'),
        ),
      );
    }
    return h('div', attrs, ...parts);
  }

  /** Edit and Delete for the messages I may change, Reply and React for any stored one, or null. */
  actions(chat, m) {
    const canEdit = this.store.canEdit(m);
    const canDelete = this.store.canDelete(chat, m);
    const canReact = this.store.canReact(m);
    if (!canEdit && !canDelete && !canReact) return null;
    const picking = this.isPicking(chat, m);
    const mine = m.senderId === this.store.me?.id;
    const summary = summarize(m);
    const whose = mine ? 'message' : `message from ${this.store.participant(chat.id, m.senderId)?.displayName ?? this.store.nameOf(m.senderId)}`;
    return h(
      'span',
      { class: 'msg-actions' },
      canEdit
        ? h('button', { type: 'button', class: 'edit-message', 'aria-label': `Edit ${whose}: ${summary}`, onclick: () => this.startEditing(m) }, 'Edit')
        : null,
      canDelete
        ? h('button', { type: 'button', class: 'delete-message', 'aria-label': `Delete ${whose}: ${summary}`, onclick: () => this.confirmDelete(chat, m) }, 'Delete')
        : null,
      canReact
        ? h('button', { type: 'button', class: 'reply-message', 'aria-label': `Reply to ${whose}: ${summary}`, onclick: () => this.startReply(m) }, 'Reply')
        : null,
      // Last: Tab reaches a message's changes first, as before reactions came.
      canReact
        ? h(
            'button',
            {
              type: 'button',
              class: 'react-message',
              'aria-label': `React to ${whose}: ${summary}`,
              'aria-expanded': String(picking),
              'aria-controls': picking ? 'reaction-picker' : null,
              onclick: () => (this.isPicking(chat, m) ? this.closePicker({ returnFocus: true }) : this.openPicker(m)),
            },
            'React',
          )
        : null,
    );
  }

  /**
   * The picture of an image message, or null: yours on its way from the file you picked; stored
   * ones from chat-service (fetched with the token), the thumbnail in the log, the original when
   * opened. An older message's `imageUrl` alone still shows: an https link as it is.
   */
  picture(chat, m, mine) {
    const name = mine ? null : (this.store.participant(chat.id, m.senderId)?.displayName ?? this.store.nameOf(m.senderId));
    const alt = mine ? 'Your image' : `Image from ${name}`;
    const label = mine ? 'Open your image' : `Open the image from ${name}`;
    // The log is rebuilt on every change: the picture to go back to may be a new element by then.
    const findOpener = () => this.control({ clientMsgId: m.clientMsgId, kind: 'msg-image' });
    const view = { title: alt, caption: m.content || undefined, errorText: (e) => this.imageErrorText(e), findOpener };
    if (m.pending && m.image) {
      const { localUrl, width, height, file } = m.image;
      return imageBox({
        alt,
        label,
        width,
        height,
        src: localUrl,
        unavailable: file.name || 'Image',
        onOpen: () => openImageViewer({ ...view, src: localUrl, fileName: file.name }),
      });
    }
    const image = m.image ?? (m.imageUrl ? { url: m.imageUrl, thumbnailUrl: m.imageUrl } : null);
    if (!image) return null;
    if (!isServicePath(image.thumbnailUrl)) {
      if (!/^https:\/\//i.test(image.thumbnailUrl ?? '')) return null; // never http, data: or //host
      return imageBox({
        alt, label, width: image.width, height: image.height, src: image.thumbnailUrl, unavailable: 'Image unavailable',
        onOpen: () => openImageViewer({ ...view, src: image.url }),
      });
    }
    const thumb = image.thumbnailUrl;
    const full = isServicePath(image.url) ? image.url : thumb;
    const extension = { 'image/jpeg': 'jpg', 'image/gif': 'gif', 'image/webp': 'webp' }[image.contentType] ?? 'png';
    return imageBox({
      alt,
      label,
      width: image.width,
      height: image.height,
      src: this.images.ready(thumb),
      load: () => this.images.load(thumb),
      retryLoad: !this.images.failedRecently(thumb),
      unavailable: 'Image unavailable. Select to try again.',
      onOpen: () =>
        openImageViewer({
          ...view,
          src: null,
          load: (signal) => this.images.fetchObjectUrl(full, { signal }),
          fileName: `image-${image.id ?? m.seq}.${extension}`,
        }),
    });
  }

  imageErrorText(error) {
    if (error?.code === 'not_found') return 'This image is not available to you any more.';
    if (error?.code === 'network') return 'The server cannot be reached. Check your connection and try again.';
    return 'The image could not be loaded.';
  }

  status(chat, m, isLastMine) {
    let state;
    let label;
    let icon;
    let title;
    if (m.pending) {
      state = m.state === 'failed' || m.state === 'uploading' ? m.state : 'sending';
      label = { failed: 'Not sent', uploading: 'Uploading…', sending: 'Sending…' }[state];
      icon = state === 'failed' ? '!' : '◷';
    } else {
      const d = this.store.deliveryOf(chat, m.seq);
      state = d.state;
      const others = this.store.others(chat).length;
      label = { sent: 'Sent', delivered: 'Delivered', read: 'Read' }[state];
      if (chat.kind === 'group' && state !== 'read' && d.readers > 0) label = `Read by ${d.readers} of ${others}`;
      if (chat.kind === 'group' && d.readers > 0) title = this.readers(chat, m.seq);
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

  /** Who in a group has read up to `seq`, and who not yet, by name: "Read by Dan and Eve; not yet by Finn". */
  readers(chat, seq) {
    const [read, unread] = [[], []];
    const byName = this.store.others(chat).sort((a, b) => a.displayName.localeCompare(b.displayName));
    for (const p of byName) (p.lastReadSeq >= seq ? read : unread).push(p.displayName);
    const who = `Read by ${listNames(read)}`;
    return unread.length ? `${who}; not yet by ${listNames(unread)}` : who;
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
    } else if (event.key === 'Escape' && this.editing && !event.isComposing) {
      event.preventDefault(); // cancels the edit only: the chat stays open
      this.cancelEditing();
    } else if (event.key === 'Escape' && this.replies.has(this.chatId) && !event.isComposing) {
      event.preventDefault(); // the reply only, as an edit
      this.cancelReply();
    }
  }

  onInput() {
    if (!this.chatId) return;
    this.updateCounter();
    // An edit is neither a draft nor typing: the others would wait for a message that never comes.
    if (this.editing) return;
    this.drafts.set(this.chatId, this.composer.value);
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
    if (!this.chatId) return;
    if (this.editing) {
      this.saveEdit();
      return;
    }
    const content = this.composer.value;
    const image = this.staged.get(this.chatId) ?? null;
    if (!content.trim() && !image) return;
    this.stopTyping();
    this.composer.value = '';
    this.drafts.delete(this.chatId);
    this.updateCounter();
    this.unreadFrom = null;
    // The picked image goes with the message (its local URL now the message's), the text its caption.
    this.staged.delete(this.chatId);
    const replyTo = this.replies.get(this.chatId);
    this.replies.delete(this.chatId);
    this.say('');
    this.renderEditing();
    this.send(undefined, this.chatId, content.trim() ? content : '', image ?? undefined, replyTo);
    this.render({ stick: 'bottom' });
  }

  // --- editing and deleting -------------------------------------------------------------------

  /** Puts one of my messages in the composer to be changed; the draft there waits until it is done. */
  startEditing(m) {
    this.stopTyping();
    this.editing = { chatId: this.chatId, seq: m.seq, original: m.content, saving: false };
    this.composer.value = m.content;
    this.say('');
    this.renderEditing();
    this.updateCounter();
    this.render();
    this.composer.focus({ preventScroll: true });
    this.composer.setSelectionRange(this.composer.value.length, this.composer.value.length);
  }

  /**
   * Sends the edit, naming the text it replaces: offline it waits for the connection, and if the
   * message was edited elsewhere meanwhile the server refuses it rather than undo that edit. The
   * server has the last word on what a message may hold (an empty text is fine for an image's
   * caption, not otherwise): a refusal is shown, and the text stays to fix.
   */
  async saveEdit() {
    const editing = this.editing;
    if (editing.saving) return;
    const content = this.composer.value;
    if (content === editing.original) {
      this.endEditing();
      return;
    }
    editing.saving = true;
    this.say(this.client.online ? '' : 'Offline: your edit will be saved when the connection is back.');
    const { chatId, seq, original } = editing;
    editing.withdraw = new AbortController();
    try {
      const message = await this.client.editMessage({ chatId, seq, content, replaces: original, signal: editing.withdraw.signal });
      this.store.updateMessage(message);
      if (this.editing === editing) this.endEditing();
    } catch (error) {
      if (this.editing !== editing) {
        // Left meanwhile (another chat opened and back, say): a refusal is still told, a
        // withdrawal was the user's own doing.
        if (error?.code !== 'aborted' && this.chatId === chatId) this.say(changeErrorText(error, 'edit', this.maxChars));
        return;
      }
      if (error?.code === 'edit_conflict') {
        // What it reads now is in the log (its update came before this answer); saving again
        // replaces that, knowingly.
        editing.original = this.store.history(chatId).bySeq.get(seq)?.content ?? original;
        this.renderEditing();
        this.say(`${changeErrorText(error, 'edit')} Your text is still here; save again to replace what it says now.`);
        return;
      }
      this.say(changeErrorText(error, 'edit', this.maxChars));
    } finally {
      editing.saving = false;
    }
  }

  /**
   * Escape or ×: leaves editing, and an edit saved while offline that has not gone out yet is not
   * sent (one already on its way is saved).
   */
  cancelEditing() {
    this.editing?.withdraw?.abort();
    this.endEditing();
  }

  /** Leaves editing, saved or not: the draft comes back, and focus stays in the composer. */
  endEditing() {
    if (!this.editing) return;
    this.stopEditing();
    this.say('');
    this.render();
    this.composer.focus({ preventScroll: true });
  }

  stopEditing() {
    this.editing = null;
    this.composer.value = this.drafts.get(this.chatId) ?? '';
    this.updateCounter();
    this.renderEditing();
  }

  /** The composer as it is for a new message, or for an edit: what is edited, and how to leave. */
  renderEditing() {
    const editing = this.editing;
    this.editingBar.hidden = !editing;
    this.attachButton.hidden = !!editing;
    this.sendButton.setAttribute('aria-label', editing ? 'Save the edit' : 'Send');
    replaceChildren(this.sendButton, h('span', { 'aria-hidden': 'true' }, editing ? '✓' : '➤'));
    const replying = !editing && this.replies.has(this.chatId);
    if (editing || replying) this.composer.setAttribute('aria-describedby', editing ? 'editing-bar' : 'reply-bar');
    else this.composer.removeAttribute('aria-describedby');
    replaceChildren(
      this.editingBar,
      editing
        ? [
            h(
              'span',
              { class: 'editing-text' },
              h('span', { class: 'editing-title' }, 'Editing your message'),
              h('span', { class: 'editing-original' }, editing.original || 'An image without a caption'),
              h('span', { class: 'editing-hint' }, 'Enter saves, Escape cancels'),
            ),
            h('button', { type: 'button', class: 'editing-cancel', 'aria-label': 'Cancel editing', onclick: () => this.cancelEditing() }, '×'),
          ]
        : [],
    );
    this.renderReply();
    this.renderStaged();
  }

  /** Asks first, in a dialog: a deletion is for everyone and cannot be undone. */
  confirmDelete(chat, m) {
    const mine = m.senderId === this.store.me?.id;
    const sender = this.store.participant(chat.id, m.senderId)?.displayName ?? this.store.nameOf(m.senderId);
    openConfirm({
      title: 'Delete this message?',
      text: mine ? 'It will be deleted for everyone in this chat.' : `${sender}'s message will be deleted for everyone in this chat.`,
      quote: m.content || (m.image || m.imageUrl ? 'An image' : undefined),
      confirmLabel: 'Delete',
      errorText: (error) => changeErrorText(error, 'delete', this.maxChars),
      // The Delete button goes with the message: focus then goes to the conversation.
      findReturn: () => this.control({ clientMsgId: m.clientMsgId, kind: 'delete-message' }) ?? this.log,
      onConfirm: async () => {
        const deletion = this.client.deleteMessage({ chatId: chat.id, seq: m.seq });
        if (this.client.online) {
          this.store.updateMessage(await deletion);
          return;
        }
        // It waits for the connection: the dialog has done its part, the conversation says so.
        this.say('Offline: the message will be deleted when the connection is back.');
        deletion.then(
          (message) => {
            this.store.updateMessage(message);
            if (this.chatId === chat.id) this.say('');
          },
          (error) => {
            if (this.chatId === chat.id) this.say(changeErrorText(error, 'delete', this.maxChars));
          },
        );
      },
    });
  }

  // --- replying --------------------------------------------------------------------------------

  /** The next message will answer `m`: the composer says so, and takes focus. */
  startReply(m) {
    if (this.editing) this.cancelEditing();
    this.replies.set(this.chatId, m.seq);
    this.renderEditing();
    this.composer.focus({ preventScroll: true });
  }

  /** Escape or ×: the next message answers nothing; the text typed stays. */
  cancelReply() {
    this.replies.delete(this.chatId);
    this.renderEditing();
    this.composer.focus({ preventScroll: true });
  }

  /** Who sent a message and what it says, in a line, as a quote shows it. */
  quoted(chat, seq) {
    const m = this.store.messageAt(chat.id, seq);
    if (!m) {
      this.readQuoted(chat.id, seq);
      return { name: null, text: 'An earlier message' };
    }
    const name = m.senderId === this.store.me?.id ? 'You' : (this.store.participant(chat.id, m.senderId)?.displayName ?? this.store.nameOf(m.senderId));
    if (m.deletedAt) return { name, text: 'Message deleted' };
    return { name, text: m.content ? m.content.replace(/\s+/g, ' ').trim() : 'An image' };
  }

  /**
   * A quoted message outside the loaded history is read on its own (once): the history stays the
   * pages read from its newest end, so that scrolling up still loads what lies between.
   */
  async readQuoted(chatId, seq) {
    const key = `${chatId} ${seq}`;
    if (this.quoteReads.has(key)) return;
    this.quoteReads.add(key);
    try {
      const page = await this.api.history(chatId, { after: seq - 1, limit: 1 });
      const m = page.messages.find((x) => x.seq === seq);
      if (m) this.store.addQuoted(m);
    } catch {
      this.quoteReads.delete(key); // offline, say: the next render asks again
    }
  }

  /** The quote above a reply: who and what it answers; a click goes to that message. */
  quote(chat, m) {
    const { name, text } = this.quoted(chat, m.replyTo);
    return h(
      'button',
      {
        type: 'button',
        class: 'reply-quote',
        'aria-label': `Replying to ${name ? `${name}: ` : ''}${text}. Show that message`,
        title: 'Show the message this replies to',
        onclick: () => this.reveal(chat.id, m.replyTo),
      },
      name ? h('span', { class: 'reply-quote-name' }, name) : null,
      h('span', { class: 'reply-quote-text' }, text),
    );
  }

  /** The line above the composer while the next message is a reply, with its × to cancel. */
  renderReply() {
    if (!this.replyBar) return;
    const seq = !this.editing && this.chatId ? this.replies.get(this.chatId) : undefined;
    const chat = this.store.chats.get(this.chatId);
    this.replyBar.hidden = seq === undefined || !chat;
    if (this.replyBar.hidden) {
      this.replyBarKey = null;
      replaceChildren(this.replyBar);
      return;
    }
    const { name, text } = this.quoted(chat, seq);
    // Drawn again only when it says something else: the × may have focus.
    const key = JSON.stringify([chat.id, seq, name, text]);
    if (key === this.replyBarKey) return;
    this.replyBarKey = key;
    replaceChildren(
      this.replyBar,
      h(
        'span',
        { class: 'editing-text' },
        h('span', { class: 'editing-title' }, name ? `Replying to ${name === 'You' ? 'yourself' : name}` : 'Replying'),
        h('span', { class: 'editing-original' }, text),
        h('span', { class: 'editing-hint' }, 'Escape cancels the reply'),
      ),
      h('button', { type: 'button', class: 'editing-cancel', 'aria-label': 'Cancel the reply', onclick: () => this.cancelReply() }, '×'),
    );
  }

  // --- reacting ---------------------------------------------------------------------------------

  isPicking(chat, m) {
    return !!this.picking && this.picking.chatId === chat.id && this.picking.seq === m.seq;
  }

  /** The open picker, drawn into its message (over what follows it), or null. */
  emojiPicker(chat, m) {
    if (!this.isPicking(chat, m)) return null;
    const whose = m.senderId === this.store.me?.id ? 'your message' : `the message from ${this.store.participant(chat.id, m.senderId)?.displayName ?? this.store.nameOf(m.senderId)}`;
    const given = myReactions(this.reactionsShown(chat, m), this.store.me?.id);
    return reactionPicker({
      id: 'reaction-picker',
      label: `React to ${whose}`,
      active: this.picking.active,
      given,
      onPick: (emoji, on) => {
        this.closePicker({ returnFocus: true });
        this.react(chat.id, m.seq, emoji, on);
      },
      onMove: (emoji) => {
        if (this.picking) this.picking.active = emoji;
      },
      onEscape: () => this.closePicker({ returnFocus: true }),
      onFocusOut: (event) => this.pickerLost(event),
    });
  }

  /** Opens a message's picker, its first emoji focused. */
  openPicker(m) {
    this.picking = { chatId: this.chatId, seq: m.seq, clientMsgId: m.clientMsgId, active: COMMON_EMOJI[0][0] };
    this.render();
    const { clientMsgId, active } = this.picking;
    this.control({ clientMsgId, kind: 'reaction-option', emoji: active })?.focus();
  }

  /**
   * Closes the picker. It is taken out as it is, not by a re-render: a click that took focus away
   * from it must still reach what it was aimed at, and the picker lies over the log, so nothing
   * moves under the pointer. `returnFocus`: to its React button (Escape, a pick).
   */
  closePicker({ returnFocus = false } = {}) {
    const picking = this.picking;
    if (!picking) return;
    this.picking = null;
    this.log.querySelector('.reaction-picker')?.remove();
    const opener = this.control({ clientMsgId: picking.clientMsgId, kind: 'react-message' });
    opener?.setAttribute('aria-expanded', 'false');
    opener?.removeAttribute('aria-controls');
    if (returnFocus) opener?.focus({ preventScroll: true });
  }

  /**
   * Focus left a picker option: the picker closes once focus is elsewhere. Not when it went to the
   * picker's React button (that click closes it), nor when a re-render replaced the picker (the new
   * one has focus by then).
   */
  pickerLost(event) {
    const opener = (el) => el?.classList.contains('react-message') && el.closest('.msg')?.dataset.clientMsgId === this.picking?.clientMsgId;
    if (event.relatedTarget && (event.relatedTarget.closest('.reaction-picker') || opener(event.relatedTarget))) return;
    setTimeout(() => {
      const now = document.activeElement;
      if (this.picking && !now?.closest('.reaction-picker') && !opener(now)) this.closePicker();
    });
  }

  /** A message's reactions with my changes on their way applied. */
  reactionsShown(chat, m) {
    return withWishes(m.reactions, this.wishes.get(`${chat.id} ${m.seq}`), this.store.me?.id);
  }

  /**
   * Adds my reaction `emoji` to message `seq` (`on`) or takes it back. The chip shows it at once;
   * offline it waits for the connection (clicked again meanwhile, only the last click goes out).
   * The answer is applied when it comes (the chat's echo of it then changes nothing); a refusal is
   * said above the composer.
   */
  async react(chatId, seq, emoji, on) {
    const key = `${chatId} ${seq}`;
    const wishes = this.wishes.get(key) ?? new Map();
    this.wishes.set(key, wishes);
    const wish = { on };
    wishes.set(emoji, wish);
    const offline = !this.client.online;
    this.say(offline ? OFFLINE_REACTION : '');
    this.render();
    try {
      const request = { chatId, seq, emoji };
      const message = await (on ? this.client.addReaction(request) : this.client.removeReaction(request));
      if (offline && this.chatId === chatId && this.notice?.textContent === OFFLINE_REACTION) this.say('');
      this.store.updateMessage(message);
    } catch (error) {
      if (this.chatId === chatId) this.say(reactionErrorText(error, on));
    } finally {
      if (wishes.get(emoji) === wish) {
        wishes.delete(emoji);
        if (wishes.size === 0 && this.wishes.get(key) === wishes) this.wishes.delete(key);
        if (this.chatId === chatId) this.render();
      }
    }
  }

  // --- attaching an image -----------------------------------------------------------------------

  /** Takes the first image of files picked, pasted or dropped; says why when there is none. */
  stageFrom(files) {
    if (!this.chatId || files.length === 0) return;
    const file = files.find((f) => IMAGE_TYPES.includes(f.type)) ?? files[0];
    this.stage(file, files.length > 1 ? 'One image at a time: the first one is attached.' : '');
  }

  /** Checks a file (type, size; the server has the last word) and puts it above the composer. */
  async stage(file, note = '') {
    const chatId = this.chatId;
    const problem = imageProblem(file, IMAGE_TYPES, this.maxImageBytes);
    if (problem) {
      this.say(problem);
      return;
    }
    const localUrl = URL.createObjectURL(file);
    const size = await naturalSize(localUrl);
    this.unstage(chatId);
    this.staged.set(chatId, { file, localUrl, width: size?.width, height: size?.height });
    if (this.chatId !== chatId) return; // shown when that chat is open again
    this.say(note);
    this.renderStaged();
    this.composer.focus({ preventScroll: true });
  }

  /** Drops the picked image of a chat (its local URL is let go). */
  unstage(chatId) {
    const staged = this.staged.get(chatId);
    if (!staged) return;
    URL.revokeObjectURL(staged.localUrl);
    this.staged.delete(chatId);
  }

  renderStaged() {
    // A picked image waits for the next new message; an edit cannot add one.
    const staged = this.chatId && !this.editing && this.staged.get(this.chatId);
    this.stagedView.hidden = !staged;
    if (!staged) {
      replaceChildren(this.stagedView);
      return;
    }
    const { file, localUrl, width } = staged;
    replaceChildren(
      this.stagedView,
      width ? h('img', { class: 'staged-thumb', src: localUrl, alt: '' }) : h('span', { class: 'staged-thumb', 'aria-hidden': 'true' }),
      h(
        'span',
        { class: 'staged-text' },
        h('span', { class: 'staged-name' }, file.name || 'Pasted image'),
        h('span', { class: 'staged-size' }, `${fileSize(file.size)} · sent with your next message`),
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'staged-remove',
          'aria-label': `Remove the image ${file.name || ''}`.trim(),
          onclick: () => {
            this.unstage(this.chatId);
            this.renderStaged();
            this.composer.focus({ preventScroll: true });
          },
        },
        '×',
      ),
    );
  }

  /** A line above the composer (a file that cannot be sent); '' clears it. */
  say(text) {
    if (this.notice) this.notice.textContent = text;
  }

  /**
   * An image pasted into the composer is attached. Not when the clipboard has text too: office
   * apps put a picture of copied text next to it, and the text is what was meant.
   */
  onPaste(event) {
    const data = event.clipboardData;
    if (!data || this.editing || data.types.includes('text/plain')) return;
    const files = [...data.files];
    if (files.length === 0) return;
    event.preventDefault();
    this.stageFrom(files);
  }

  /** Files dragged over the open conversation may be dropped on it; elsewhere they are refused. */
  listenForDrops() {
    const carriesFiles = (e) => e.dataTransfer?.types.includes('Files');
    const over = (e) => {
      if (!carriesFiles(e) || !this.chatId || this.editing) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      this.root.classList.add('dropping');
    };
    this.root.addEventListener('dragenter', over);
    this.root.addEventListener('dragover', over);
    this.root.addEventListener('dragleave', (e) => {
      if (!this.root.contains(e.relatedTarget)) this.root.classList.remove('dropping');
    });
    this.root.addEventListener('drop', (e) => {
      this.root.classList.remove('dropping');
      if (!carriesFiles(e) || !this.chatId || this.editing) return;
      e.preventDefault();
      this.stageFrom([...e.dataTransfer.files]);
    });
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

/** A message in a few words, for the names of its actions. */
function summarize(m) {
  if (!m.content) return 'an image';
  const chars = [...m.content.replace(/\s+/g, ' ').trim()];
  return chars.length > SUMMARY_CHARS ? `${chars.slice(0, SUMMARY_CHARS).join('')}…` : chars.join('');
}

/** An image's size in pixels from its object URL, or null when the browser cannot read it. */
function naturalSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img.naturalWidth ? { width: img.naturalWidth, height: img.naturalHeight } : null);
    img.onerror = () => resolve(null);
    img.src = url;
  });
}
