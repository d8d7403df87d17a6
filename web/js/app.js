// app.js — the Converge web client: wires the session, the protocol client, the store and the views.

import { ConvergeClient, uuid } from './converge-client.js';
import { Api } from './api.js';
import { ImageStore } from './images.js';
import { Session, requestJson } from './session.js';
import { Store } from './store.js';
import { renderAuth } from './ui/auth.js';
import { renderChatList } from './ui/chat-list.js';
import { openChatInfo } from './ui/chat-info.js';
import { ConversationView } from './ui/conversation.js';
import { messageSearch } from './ui/message-search.js';
import { openNewChat } from './ui/new-chat.js';
import { desktopNotifications } from './ui/notifications.js';
import { openProfile } from './ui/profile.js';
import { h, replaceChildren } from './ui/dom.js';
import { attachmentRefused, whatWasSent } from './ui/format.js';

const root = document.getElementById('app');
const config = await requestJson('/web/config.json').catch(() => ({ userServiceUrl: `${location.protocol}//${location.hostname}:3000` }));
const session = new Session(config.userServiceUrl);
const api = new Api(session, config.userServiceUrl);

let app = null;

/** What the sign-in screen says after a session ended, by why it ended. */
const ENDINGS = {
  'signed-out': 'You have signed out.',
  'signed-out-everywhere': 'You have signed out on all your devices.',
  deactivated: 'Your account is deactivated: it can no longer sign in.',
  expired: 'Your session has expired. Please sign in again.',
  'ended-elsewhere':
    'You have been signed out: your session was ended from another device (signed out everywhere, or the password changed).',
};

session.addEventListener('ended', (e) => {
  // The server said why before the refresh failed: the session was ended, it did not just expire.
  const reason = e.detail.reason === 'expired' && app?.endedElsewhere ? 'ended-elsewhere' : e.detail.reason;
  app?.stop();
  app = null;
  showAuth(ENDINGS[reason] ?? ENDINGS['signed-out']);
});

function showAuth(notice) {
  document.title = 'Converge — sign in';
  renderAuth({ root, session, notice, onSignedIn: () => (app = startChat()) });
}

if (session.signedIn) app = startChat();
else showAuth();

/** The signed-in app. Returns a handle whose `stop()` tears it down. */
function startChat() {
  document.title = 'Converge';
  const store = new Store();
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const client = new ConvergeClient({ url: wsUrl, getToken: (opts) => session.accessToken(opts) });
  const images = new ImageStore(session, api.chats);
  let activeId = null;
  /** A message found, to show once its chat opens: {chatId, seq}. */
  let revealing = null;

  // --- the frame ---
  const banner = h('div', { class: 'banner', role: 'status', 'aria-live': 'polite', hidden: true });
  /** Says new messages from others to screen readers, one at a time. */
  const announcer = h('div', { class: 'sr-only', 'aria-live': 'polite' });
  const list = h('ul', { class: 'chat-list', 'aria-label': 'Chats' });
  const me = h('span', { class: 'me-name' }, session.user?.displayName ?? '');
  const pane = h('main', { class: 'pane', id: 'pane', 'aria-label': 'Conversation' });
  const newChatButton = h('button', { type: 'button', class: 'primary new-chat-btn', onclick: newChat }, h('span', { 'aria-hidden': 'true' }, '+ '), 'New chat');
  const nav = h('nav', { class: 'list-wrap', 'aria-label': 'Your chats' }, list);
  /** Desktop notifications of new messages, when the user turns them on. */
  const notifications = desktopNotifications({ store, openChatId: () => activeId, onOpen: openChat });
  /** The message search: while it holds a query, what it found replaces the chat list. */
  const search = messageSearch({ api, store, onOpen: openFound, onSearching: (on) => (nav.hidden = on) });
  const shell = h(
    'div',
    { class: 'shell' },
    h(
      'aside',
      { class: 'sidebar', 'aria-label': 'Chats' },
      h(
        'header',
        { class: 'side-header' },
        h('h1', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '◆'), ' Converge'),
        h('button', { type: 'button', class: 'link logout', onclick: () => session.logout() }, 'Sign out'),
      ),
      h(
        'div',
        { class: 'side-me' },
        'Signed in as ',
        me,
        h('button', { type: 'button', class: 'link edit-profile', 'aria-label': 'Edit your profile', onclick: editProfile }, 'Edit'),
        notifications.button,
      ),
      // The search first: Tab from New chat goes on to the chats.
      search.field,
      newChatButton,
      nav,
      search.results,
    ),
    pane,
  );
  replaceChildren(root, banner, shell, announcer);

  const view = new ConversationView({
    root: pane,
    store,
    api,
    client,
    images,
    maxChars: config.maxMessageChars,
    maxImageBytes: config.maxUploadBytes,
    send,
    discard,
    onBack: () => {
      location.hash = '';
    },
    onInfo: (chatId) =>
      openChatInfo({
        store,
        api,
        chatId,
        onLeft: leftChat,
        // The chat is gone, its conversation with it: focus goes to the list (or the search
        // shown in its place), or New chat.
        findReturn: () => (nav.hidden ? search.input : (list.querySelector('button') ?? newChatButton)),
      }),
  });
  showPlaceholder();

  // --- protocol events → store ---
  const on = (type, fn) => client.addEventListener(type, (e) => fn(e.detail));
  on('ready', ({ user, chats, online, readReceiptsMaxChatMembers }) => {
    me.textContent = user.displayName;
    store.readReceiptsMaxChatMembers = readReceiptsMaxChatMembers;
    store.setChats(user, chats, online);
    if (!activeId) route();
  });
  on('message', ({ message }) => {
    store.addMessage(message);
    const chat = store.chats.get(message.chatId);
    if (chat && message.senderId !== store.me?.id && !message.deletedAt) {
      const who = store.nameOf(message.senderId);
      const where = chat.id === activeId ? '' : ` in ${store.title(chat)}`;
      announcer.textContent = `${who}${where}: ${whatWasSent(message)}`;
    }
    notifications.notify(message);
  });
  on('message-updated', ({ message }) => store.updateMessage(message));
  on('read', (r) => {
    store.applyRead(r);
    if (r.userId === store.me?.id) notifications.close(r.chatId, r.seq); // read here, or on another device
  });
  on('delivered', (d) => store.applyDelivered(d));
  on('typing', ({ chatId, userId, typing }) => store.setTyping(chatId, userId, typing));
  on('presence', (p) => store.setPresence(p));
  on('chat', ({ chat, online }) => {
    store.upsertChat(chat);
    if (!online) return;
    for (const { userId } of chat.participants) {
      if (userId !== store.me?.id) store.setPresence({ userId, online: online.includes(userId) });
    }
  });
  // chatId → the number of the latest fetch of that chat: an answer that comes after a later
  // fetch's would put back what the later one knew better (a role changed in between, say).
  const latestFetch = new Map();
  const refreshChat = async (chatId) => {
    const ticket = (latestFetch.get(chatId) ?? 0) + 1;
    latestFetch.set(chatId, ticket);
    const chat = await api.getChat(chatId).catch(() => null);
    const latest = latestFetch.get(chatId) === ticket;
    if (latest) latestFetch.delete(chatId);
    if (latest && chat && store.chats.has(chatId)) store.upsertChat(chat);
  };
  on('member', ({ chatId, userId, joined }) => {
    if (!joined) {
      if (userId !== store.me?.id) store.removeParticipant(chatId, userId);
      return;
    }
    // The frame names only the id: the chat as REST has it now brings the newcomer's name.
    refreshChat(chatId);
  });
  on('participant', ({ chatId, userId, displayName, avatarUrl }) => {
    store.updateParticipant(chatId, userId, { displayName, avatarUrl });
    if (userId === store.me?.id) me.textContent = displayName;
  });
  on('chat-updated', ({ chatId, title }) => store.renameChat(chatId, title));
  on('role', ({ chatId, userId, role }) => {
    store.setRole(chatId, userId, role);
    // A newcomer whose joining is still being fetched (or not known yet): that answer may predate
    // this change, so the chat is read again, and only the latest read counts.
    if (latestFetch.has(chatId) || !store.participant(chatId, userId)) refreshChat(chatId);
  });
  on('left', ({ chatId }) => leftChat(chatId));
  on('status', (s) => showStatus(s));
  // Told on an open connection that its token is refused: only when its session was ended at
  // user-service (signed out everywhere, the password changed on another device).
  let endedElsewhere = false;
  on('server-error', ({ code }) => {
    if (code === 'invalid_token' && client.online) endedElsewhere = true;
  });
  // The server refused even a freshly refreshed token: this session cannot chat any more.
  on('auth-failed', () => {
    if (!session.signedIn) return;
    session.clear();
    session.end('expired');
  });

  // --- store changes → views ---
  let listQueued = false;
  store.addEventListener('change', (e) => {
    const { chatId, typing, chats } = e.detail;
    if ((chats || typing) && !listQueued) {
      listQueued = true;
      queueMicrotask(() => {
        listQueued = false;
        renderChatList(list, store, activeId, openChat);
        const unread = [...store.chats.values()].reduce((n, c) => n + c.unreadCount, 0);
        document.title = unread ? `(${unread}) Converge` : 'Converge';
      });
    }
    if (chatId && chatId === activeId) {
      if (!store.chats.has(chatId)) return;
      if (typing) view.renderTyping();
      else {
        view.renderHeader();
        view.render();
        view.markRead();
      }
    }
    if (e.detail.presence && activeId) view.renderHeader();
  });

  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', onVisible);
  window.addEventListener('keydown', onKey);
  window.addEventListener('dragover', refuseStrayDrop);
  window.addEventListener('drop', refuseStrayDrop);
  client.start();

  // --- behaviour ---
  function route() {
    const match = /^#chat\/([0-9a-f-]{36})$/i.exec(location.hash);
    const id = match && store.chats.has(match[1]) ? match[1] : null;
    if (id === activeId) return;
    activeId = id;
    if (id) notifications.close(id);
    shell.classList.toggle('in-chat', !!id);
    renderChatList(list, store, activeId, openChat);
    const reveal = revealing?.chatId === id ? revealing.seq : undefined;
    revealing = null;
    if (id) view.open(id, { reveal });
    else {
      view.close();
      showPlaceholder();
    }
  }

  /** The user left a chat, or was removed from it: it goes from the list, and from the screen. */
  function leftChat(chatId) {
    store.removeChat(chatId);
    if (chatId === activeId) location.hash = '';
  }

  function openChat(chatId) {
    if (location.hash === `#chat/${chatId}`) route();
    else location.hash = `#chat/${chatId}`;
  }

  /** A message found by the search: its chat opens at it (or, already open, goes to it). */
  function openFound({ chatId, seq }) {
    if (chatId === activeId) {
      view.reveal(chatId, seq);
      return;
    }
    revealing = { chatId, seq };
    openChat(chatId);
  }

  function showPlaceholder() {
    replaceChildren(
      pane,
      h(
        'div',
        { class: 'placeholder' },
        h('p', { class: 'placeholder-title' }, 'Your conversations'),
        h('p', {}, 'Pick a chat on the left, or start a new one.'),
      ),
    );
  }

  /**
   * The new name is user-service's; the fresh token carries it to this connection, whose chats
   * are then told (participant_updated), this client's views included.
   */
  async function editProfile() {
    // The picture is not in the token: ask for it (the dialog opens without it if that fails).
    const current = await api.me().catch(() => null);
    openProfile({
      displayName: current?.displayName ?? me.textContent,
      avatarUrl: current?.avatarUrl ?? null,
      onSave: async ({ displayName, avatarUrl }) => {
        await api.updateProfile({ displayName, avatarUrl });
        session.renamed(displayName);
        me.textContent = displayName;
        await client.renewNow();
      },
      onChangePassword: (passwords) => api.changePassword(passwords),
      onSignOutEverywhere: async () => {
        await api.logoutAll();
        session.forget('signed-out-everywhere');
      },
      onDeactivate: async () => {
        await api.deactivate();
        session.forget('deactivated');
      },
    });
  }

  function newChat() {
    openNewChat({
      api,
      me: store.me ?? session.user,
      onCreated: (chat) => {
        store.upsertChat(chat);
        openChat(chat.id);
      },
    });
  }

  /**
   * Sends a new message (`chatId`, `content`, maybe an `image` picked: {file, localUrl, width,
   * height}, maybe the seq it is a reply to) or retries a failed one (`retryId`). An image is
   * uploaded first, once: a retry after the upload worked sends the same attachment id, with the
   * same clientMsgId.
   */
  async function send(retryId, chatId, content, image, replyTo) {
    const item = retryId ? store.retryPending(retryId) : store.addPending(chatId, uuid(), content, image, replyTo);
    if (!item) return;
    try {
      if (item.image && !item.image.attachmentId) {
        const upload = await api.uploadImage(item.image.file);
        // The stored message shows the file already on screen: no fetch, no flicker.
        images.adopt(upload.thumbnailUrl, item.image.localUrl);
        store.uploaded(item.clientMsgId, upload);
      }
      const { chatId: to, content: text, clientMsgId } = item;
      const message = await client.sendMessage({
        chatId: to, content: text, clientMsgId, replyTo: item.replyTo, attachmentId: item.image?.attachmentId,
      });
      store.addMessage(message);
    } catch (error) {
      if (item.image && attachmentRefused(error)) {
        // An upload left unsent too long expires: the retry sends the file again.
        images.forget(item.image.thumbnailUrl);
        store.uploadLost(item.clientMsgId);
      }
      store.failPending(item.clientMsgId, error);
    }
  }

  /** Gives up a failed message; a picture not uploaded is let go (an uploaded one is `images`'). */
  function discard(clientMsgId) {
    const item = store.discardPending(clientMsgId);
    if (item?.image && !item.image.attachmentId) URL.revokeObjectURL(item.image.localUrl);
  }

  /** A file dropped beside the open conversation would replace the app with it: refused instead. */
  function refuseStrayDrop(e) {
    if (!e.dataTransfer?.types.includes('Files') || e.defaultPrevented) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'none';
  }

  function showStatus({ state, retryAt, closeCode }) {
    clearInterval(showStatus.timer);
    if (state === 'online' || state === 'stopped') {
      banner.hidden = true;
      document.body.classList.remove('offline');
      if (state === 'online') {
        view.readRequested.clear(); // a mark_as_read may have been lost with the old connection
        // A chat opened while offline could not load its history: load it now.
        if (activeId && !store.history(activeId).loaded) view.open(activeId);
        else view.markRead();
      }
      return;
    }
    if (state === 'connecting' && banner.hidden) return; // the first connect: no alarm yet
    document.body.classList.add('offline');
    banner.hidden = false;
    // The server turned this connection away: the account holds as many as it may (other tabs,
    // other devices). Waiting does not help until one of them closes, so say which.
    const why = closeCode === 4029 ? 'You are offline: your account has too many open tabs or devices; close one.' : 'You are offline.';
    const draw = () => {
      const secs = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
      replaceChildren(
        banner,
        h('span', {}, state === 'connecting' || secs === 0 ? `${why} Reconnecting…` : `${why} Reconnecting in ${secs} s…`),
        ' ',
        state === 'offline' ? h('button', { type: 'button', class: 'link', onclick: () => client.reconnectNow() }, 'Retry now') : null,
      );
    };
    draw();
    if (retryAt) showStatus.timer = setInterval(draw, 1000);
  }

  function onVisible() {
    if (document.visibilityState === 'visible') view.markRead();
  }

  function onKey(e) {
    // A view that used the Escape (an edit cancelled) has said so.
    if (e.key === 'Escape' && activeId && !e.defaultPrevented && !document.querySelector('dialog[open]')) location.hash = '';
  }

  return {
    get endedElsewhere() {
      return endedElsewhere;
    },
    stop() {
      client.stop();
      notifications.stop();
      clearInterval(showStatus.timer);
      window.removeEventListener('hashchange', route);
      document.removeEventListener('visibilitychange', onVisible);
      window.removeEventListener('keydown', onKey);
      window.removeEventListener('dragover', refuseStrayDrop);
      window.removeEventListener('drop', refuseStrayDrop);
      images.clear();
      for (const item of store.pending.values()) {
        if (item.image && !item.image.attachmentId) URL.revokeObjectURL(item.image.localUrl);
      }
    },
  };
}
