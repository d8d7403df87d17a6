// store.js — what the web client knows: chats, their messages (stored and pending), receipts and
// typing. Events from the protocol client and REST answers go in; views read it and re-render on
// its `change` events (detail: {chats?: true, chatId?}).

/** How long a typing indicator lasts if no `typing: false` comes (the server's TTL is 6 s). */
const TYPING_FALLBACK_MS = 8000;

export class Store extends EventTarget {
  constructor() {
    super();
    this.reset();
  }

  reset() {
    /** @type {{id: string, displayName: string} | null} */
    this.me = null;
    /** chatId → ChatDto (kept current: lastSeq, lastMessage, unreadCount, participants' watermarks). */
    this.chats = new Map();
    /**
     * chatId → {bySeq: Map<seq, MessageDto>, updates: Map<seq, MessageDto>, quoted: Map<seq,
     * MessageDto>, oldest: number|null, hasOlder: boolean, loaded: boolean}. `updates`: changes to
     * messages not loaded yet, so that a history page read before the change cannot bring the old
     * copy back. `quoted`: messages outside the loaded history that a reply quotes, read on their own.
     */
    this.histories = new Map();
    /**
     * clientMsgId → {chatId, clientMsgId, content, createdAt, state: 'uploading'|'sending'|'failed',
     * error?, image?: {file, localUrl, width, height, attachmentId, thumbnailUrl}} (ids once uploaded)
     */
    this.pending = new Map();
    /** chatId → Map<userId, expiresAt> */
    this.typing = new Map();
    /** userId → display name of everyone met in a chat, kept after they leave it. */
    this.names = new Map();
    /** userId → boolean (only when the server sends presence). */
    this.presence = new Map();
    /** In chats of more members the server does not send others' reads (null: in every chat). */
    this.readReceiptsMaxChatMembers = null;
  }

  changed(detail) {
    this.dispatchEvent(new CustomEvent('change', { detail }));
  }

  // --- chats ----------------------------------------------------------------------------------

  /** `online`: ids of members online now, or null when the server tells nothing of presence. */
  setChats(me, chats, online = null) {
    this.me = me;
    if (online) {
      this.presence.clear();
      for (const chat of chats) for (const p of chat.participants) this.presence.set(p.userId, false);
      for (const id of online) this.presence.set(id, true);
    }
    const ids = new Set(chats.map((c) => c.id));
    for (const id of [...this.chats.keys()]) if (!ids.has(id)) this.removeChat(id, false);
    for (const chat of chats) this.upsertChat(chat, false);
    this.changed({ chats: true });
    // Each chat's last message may be a newer copy than its history showed (changed while this
    // client was away): an open conversation is drawn again. The change that made it comes after
    // this, as no newer than that copy, and changes nothing.
    for (const chat of chats) this.changed({ chatId: chat.id });
  }

  upsertChat(chat, notify = true) {
    const known = this.chats.get(chat.id);
    // A chat we already follow live may be ahead of a REST answer; never move it backwards.
    if (known && known.lastSeq > chat.lastSeq) return;
    const stored = { ...chat };
    this.chats.set(chat.id, stored);
    for (const p of chat.participants) this.names.set(p.userId, p.displayName);
    if (chat.lastMessage) stored.lastMessage = this.place(this.history(chat.id), chat.lastMessage);
    if (notify) this.changed({ chats: true, chatId: chat.id });
  }

  removeChat(chatId, notify = true) {
    this.chats.delete(chatId);
    this.histories.delete(chatId);
    this.typing.delete(chatId);
    if (notify) this.changed({ chats: true, chatId });
  }

  /** Chats by most recent activity first. */
  orderedChats() {
    const activity = (c) => Date.parse(c.lastMessageAt ?? c.createdAt);
    return [...this.chats.values()].sort((a, b) => activity(b) - activity(a));
  }

  /** The other people of a chat. */
  others(chat) {
    return chat.participants.filter((p) => p.userId !== this.me?.id);
  }

  title(chat) {
    if (chat.kind === 'group') return chat.title || this.others(chat).map((p) => p.displayName).join(', ') || 'Group';
    return this.others(chat)[0]?.displayName ?? 'Just you';
  }

  /** A member left a group: they go from its participants (their messages keep their name). */
  removeParticipant(chatId, userId) {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    chat.participants = chat.participants.filter((p) => p.userId !== userId);
    this.changed({ chats: true, chatId });
  }

  /**
   * People added to a group (the answer to adding them): the ones not known yet join its members.
   * Nobody is removed: an answer can be older than a `participant_left` that came before it.
   */
  addParticipants(chatId, participants) {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    const known = new Set(chat.participants.map((p) => p.userId));
    const added = participants.filter((p) => !known.has(p.userId));
    if (added.length === 0) return;
    for (const p of added) this.names.set(p.userId, p.displayName);
    chat.participants = [...chat.participants, ...added.map((p) => ({ ...p }))];
    this.changed({ chats: true, chatId });
  }

  /** A group's new name (`conversation_updated`, or the answer to one's own rename). */
  renameChat(chatId, title) {
    const chat = this.chats.get(chatId);
    if (!chat || chat.title === title) return;
    chat.title = title;
    this.changed({ chats: true, chatId });
  }

  /** A member's new role in a group (`participant_role_changed`, or the answer to one's own change). */
  setRole(chatId, userId, role) {
    const member = this.participant(chatId, userId);
    if (!member || member.role === role) return;
    member.role = role;
    this.changed({ chats: true, chatId });
  }

  /** My role in a chat: 'owner', 'admin' or 'member' (null once I am not in it). */
  myRole(chat) {
    return this.participant(chat.id, this.me?.id)?.role ?? null;
  }

  /** Whether I may rename a group, add people to it and remove its members: its owner and admins may. */
  managesGroup(chat) {
    const role = this.myRole(chat);
    return chat.kind === 'group' && (role === 'owner' || role === 'admin');
  }

  /** A member's new name or picture: the name shows wherever they are named, in every chat. */
  updateParticipant(chatId, userId, { displayName, avatarUrl }) {
    this.names.set(userId, displayName);
    const member = this.participant(chatId, userId);
    if (member) Object.assign(member, { displayName, avatarUrl });
    if (this.me?.id === userId) this.me = { ...this.me, displayName };
    this.changed({ chats: true, chatId });
  }

  /** A name for anyone met, members or former members. */
  nameOf(userId) {
    return this.names.get(userId) ?? 'Someone';
  }

  participant(chatId, userId) {
    return this.chats.get(chatId)?.participants.find((p) => p.userId === userId);
  }

  myReadSeq(chat) {
    return chat.participants.find((p) => p.userId === this.me?.id)?.lastReadSeq ?? 0;
  }

  // --- messages -------------------------------------------------------------------------------

  history(chatId) {
    let h = this.histories.get(chatId);
    if (!h) {
      h = { bySeq: new Map(), updates: new Map(), quoted: new Map(), oldest: null, hasOlder: true, loaded: false };
      this.histories.set(chatId, h);
    }
    return h;
  }

  /** A page from REST: merged by seq, so overlaps with live messages never duplicate. */
  addPage(chatId, page, { older }) {
    const h = this.history(chatId);
    for (const m of page.messages) this.place(h, m);
    const first = page.messages[0]?.seq;
    if (first != null && (h.oldest == null || first < h.oldest)) h.oldest = first;
    if (older || !h.loaded) h.hasOlder = page.hasMore && (h.oldest ?? 1) > 1;
    h.loaded = true;
    this.changed({ chatId });
  }

  /** A stored message (live, resumed or acked). */
  addMessage(message) {
    const chat = this.chats.get(message.chatId);
    if (!chat) return;
    const h = this.history(message.chatId);
    const isNew = !h.bySeq.has(message.seq);
    const kept = this.place(h, message);
    if (message.senderId === this.me?.id) this.pending.delete(message.clientMsgId);
    if (message.seq > chat.lastSeq) {
      chat.lastSeq = message.seq;
      chat.lastMessage = kept;
      chat.lastMessageAt = message.createdAt;
    }
    // A sender has read everything up to their own message (no messages_read is sent for that).
    this.moveWatermark(chat, message.senderId, message.seq, 'lastReadSeq');
    this.moveWatermark(chat, message.senderId, message.seq, 'lastDeliveredSeq');
    this.setTyping(message.chatId, message.senderId, false, false);
    chat.unreadCount = Math.max(0, chat.lastSeq - this.myReadSeq(chat));
    if (isNew || message.senderId === this.me?.id) this.changed({ chats: true, chatId: message.chatId });
  }

  /**
   * A message was edited, deleted or reacted to (`message_updated`, or the answer to one's own
   * change). A copy no newer than the one here (by `editSeq`) changes nothing: a resume may repeat
   * a change.
   */
  updateMessage(message) {
    const chat = this.chats.get(message.chatId);
    if (!chat) return;
    const h = this.history(message.chatId);
    const current = h.bySeq.get(message.seq) ?? h.updates.get(message.seq);
    if (current && (current.editSeq ?? 0) >= (message.editSeq ?? 0)) return;
    // A message outside the loaded history would show as if it came right before it: it waits.
    if (h.bySeq.has(message.seq)) h.bySeq.set(message.seq, message);
    else h.updates.set(message.seq, message);
    const isLast = message.seq === chat.lastSeq;
    if (isLast) chat.lastMessage = message;
    this.changed({ chats: isLast, chatId: message.chatId });
  }

  /** Message `seq` of a chat as it is known here, newest copy first; undefined if it is not. */
  messageAt(chatId, seq) {
    const h = this.history(chatId);
    const copies = [h.bySeq.get(seq), h.updates.get(seq), h.quoted.get(seq)].filter(Boolean);
    return copies.reduce((a, b) => newest(a, b), undefined);
  }

  /** A message read on its own to be quoted by a reply; it stays out of the history's pages. */
  addQuoted(message) {
    if (!this.chats.has(message.chatId)) return;
    const h = this.history(message.chatId);
    h.quoted.set(message.seq, newest(h.quoted.get(message.seq), message));
    this.changed({ chatId: message.chatId });
  }

  /**
   * Puts a copy of a message (live, from history, in a chat) in its chat's history, unless a newer
   * one is known: the higher `editSeq` wins, and a copy without one was never changed. Answers the
   * copy kept.
   */
  place(h, message) {
    let kept = newest(h.bySeq.get(message.seq), message);
    const update = h.updates.get(message.seq);
    if (update) {
      kept = newest(update, kept);
      h.updates.delete(message.seq);
    }
    h.bySeq.set(message.seq, kept);
    return kept;
  }

  /** Whether I may edit a message: one of mine, stored and not deleted. */
  canEdit(m) {
    return !m.pending && !m.deletedAt && m.senderId === this.me?.id;
  }

  /** Whether I may delete a message: one of mine, or anyone's in a group I own or administer. */
  canDelete(chat, m) {
    if (m.pending || m.deletedAt) return false;
    if (m.senderId === this.me?.id) return true;
    return this.managesGroup(chat);
  }

  /** Whether I may react to a message: any stored one that is not deleted, mine or not. */
  canReact(m) {
    return !m.pending && !m.deletedAt;
  }

  /**
   * A message on its way; `image` (a picked file and its local object URL) is uploaded first;
   * `replyTo`, the seq of the message it answers.
   */
  addPending(chatId, clientMsgId, content, image = null, replyTo = null) {
    const p = { chatId, clientMsgId, content, createdAt: new Date().toISOString(), state: 'sending' };
    if (replyTo != null) p.replyTo = replyTo;
    if (image) {
      p.image = { ...image, attachmentId: null };
      p.state = 'uploading';
    }
    this.pending.set(clientMsgId, p);
    this.changed({ chats: true, chatId });
    return p;
  }

  /** A pending message's image is uploaded: a retry from here on sends its id, never the file again. */
  uploaded(clientMsgId, attachment) {
    const p = this.pending.get(clientMsgId);
    if (!p?.image) return;
    const { id: attachmentId, thumbnailUrl, width, height } = attachment;
    Object.assign(p.image, { attachmentId, thumbnailUrl, width, height });
    p.state = 'sending';
    this.changed({ chatId: p.chatId });
  }

  failPending(clientMsgId, error) {
    const p = this.pending.get(clientMsgId);
    if (!p) return;
    p.state = 'failed';
    p.error = error;
    this.changed({ chatId: p.chatId });
  }

  retryPending(clientMsgId) {
    const p = this.pending.get(clientMsgId);
    if (!p) return null;
    p.state = p.image && !p.image.attachmentId ? 'uploading' : 'sending';
    p.error = null;
    this.changed({ chatId: p.chatId });
    return p;
  }

  /** The server no longer takes a pending message's upload (it expired unsent): a retry uploads again. */
  uploadLost(clientMsgId) {
    const p = this.pending.get(clientMsgId);
    if (p?.image) Object.assign(p.image, { attachmentId: null, thumbnailUrl: null });
  }

  /** Gives up a failed message; answers it, so its local picture can be let go. */
  discardPending(clientMsgId) {
    const p = this.pending.get(clientMsgId);
    if (!p) return null;
    this.pending.delete(clientMsgId);
    this.changed({ chats: true, chatId: p.chatId });
    return p;
  }

  pendingOf(chatId) {
    return [...this.pending.values()].filter((p) => p.chatId === chatId);
  }

  /** Stored messages of a chat in seq order. */
  messagesOf(chatId) {
    return [...this.history(chatId).bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  // --- receipts, typing, presence ---------------------------------------------------------------

  applyRead({ chatId, userId, seq }) {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    this.moveWatermark(chat, userId, seq, 'lastReadSeq');
    if (userId === this.me?.id) chat.unreadCount = Math.max(0, chat.lastSeq - this.myReadSeq(chat));
    this.changed({ chats: true, chatId });
  }

  /** `seq` has reached every participant (the server announces the chat's delivered-to-all mark). */
  applyDelivered({ chatId, seq }) {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    for (const p of chat.participants) this.moveWatermark(chat, p.userId, seq, 'lastDeliveredSeq');
    this.changed({ chatId });
  }

  moveWatermark(chat, userId, seq, field) {
    const p = chat.participants.find((x) => x.userId === userId);
    if (p && seq > p[field]) p[field] = seq;
  }

  /** Whether others' reads of this chat reach the client live (not in the largest groups). */
  readsShared(chat) {
    const limit = this.readReceiptsMaxChatMembers;
    return limit === null || chat.participants.length <= limit;
  }

  /**
   * Where one of my messages stands: 'sent' (stored), 'delivered' (every other member's delivery
   * watermark passed it), 'read' (every other member read it), or, in a group, partly read. Where
   * others' reads are not shared, no further than 'delivered': what was read when the chat was
   * loaded would be a count that never moves.
   */
  deliveryOf(chat, seq) {
    const others = this.others(chat);
    if (others.length === 0) return { state: 'sent' };
    const readers = this.readsShared(chat) ? others.filter((p) => p.lastReadSeq >= seq).length : 0;
    if (readers === others.length) return { state: 'read', readers };
    if (others.every((p) => Math.max(p.lastDeliveredSeq, p.lastReadSeq) >= seq)) return { state: 'delivered', readers };
    return { state: 'sent', readers };
  }

  setTyping(chatId, userId, typing, notify = true) {
    let who = this.typing.get(chatId);
    if (!who) {
      if (!typing) return;
      who = new Map();
      this.typing.set(chatId, who);
    }
    const had = who.has(userId);
    if (typing) who.set(userId, Date.now() + TYPING_FALLBACK_MS);
    else who.delete(userId);
    if (notify || had !== typing) this.changed({ typing: true, chatId });
    if (typing) setTimeout(() => this.expireTyping(chatId), TYPING_FALLBACK_MS + 50);
  }

  expireTyping(chatId) {
    const who = this.typing.get(chatId);
    if (!who) return;
    const now = Date.now();
    let changed = false;
    for (const [userId, until] of who) {
      if (until <= now) {
        who.delete(userId);
        changed = true;
      }
    }
    if (changed) this.changed({ typing: true, chatId });
  }

  typingNames(chatId) {
    const who = this.typing.get(chatId);
    if (!who) return [];
    return [...who.keys()].map((id) => this.nameOf(id));
  }

  setPresence({ userId, online }) {
    this.presence.set(userId, online);
    this.changed({ chats: true, presence: true });
  }
}

/** Of a copy of a message held and one that arrives, the newer; the arriving one when as new. */
function newest(held, arriving) {
  return held && (held.editSeq ?? 0) > (arriving.editSeq ?? 0) ? held : arriving;
}
