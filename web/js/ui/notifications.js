// notifications.js — desktop notifications of new messages while Converge is out of view (another
// tab or window in front, or another chat open), through the browser's Notification API. The
// browser is asked only when the user turns them on, and the choice is kept in this browser. A chat
// has one notification at a time: a newer message replaces it, and opening or reading the chat
// (here or on another device) closes it.

import { h } from './dom.js';
import { whatWasSent } from './format.js';

const STORAGE_KEY = 'converge.notifications';
/** A message older than this when it arrives (the backlog of a long time away) is not notified. */
const FRESH_MS = 5 * 60_000;

/**
 * The switch that turns them on and off (absent where the browser has no notifications), and what
 * the app tells them.
 * @param {object} deps
 * @param {import('../store.js').Store} deps.store
 * @param {() => string|null} deps.openChatId the chat open now
 * @param {(chatId: string) => void} deps.onOpen opens a chat (a notification was clicked)
 */
export function desktopNotifications({ store, openChatId, onOpen }) {
  const api = globalThis.Notification;
  /** chatId → {notification, seq}: the one shown for the chat, and the message it tells of. */
  const shown = new Map();
  const state = h('span', { class: 'notify-state', 'aria-hidden': 'true' });
  const button = h(
    'button',
    { type: 'button', class: 'link notify-toggle', role: 'switch', hidden: !api, onclick: toggle },
    'Desktop notifications',
    state,
  );

  const wanted = () => localStorage.getItem(STORAGE_KEY) === 'on';
  const enabled = () => !!api && wanted() && api.permission === 'granted';

  function render() {
    if (!api) return;
    const blocked = api.permission === 'denied';
    button.setAttribute('aria-checked', String(enabled()));
    state.textContent = blocked ? ': blocked' : enabled() ? ': on' : ': off';
    button.title = blocked
      ? "The browser blocks notifications from this site: allow them in its site settings, then turn them on here."
      : enabled()
        ? 'Stop the desktop notifications of new messages'
        : 'Get a desktop notification of each new message while Converge is not in view';
  }

  async function toggle() {
    if (enabled()) {
      localStorage.setItem(STORAGE_KEY, 'off');
      closeAll();
    } else {
      if (api.permission === 'default') await api.requestPermission();
      localStorage.setItem(STORAGE_KEY, api.permission === 'granted' ? 'on' : 'off');
    }
    render();
  }

  /** Whether the user sees `chatId` now: its conversation open, in a window in front. */
  const inView = (chatId) => document.visibilityState === 'visible' && document.hasFocus() && openChatId() === chatId;

  /** A new message has arrived (already in the store). */
  function notify(message) {
    if (!enabled() || message.senderId === store.me?.id || message.deletedAt || inView(message.chatId)) return;
    const chat = store.chats.get(message.chatId);
    if (!chat || message.seq <= store.myReadSeq(chat)) return; // read on another device already
    if (Date.now() - Date.parse(message.createdAt) > FRESH_MS) return;
    const who = store.participant(chat.id, message.senderId)?.displayName ?? store.nameOf(message.senderId);
    const title = chat.kind === 'group' ? `${who} in ${store.title(chat)}` : who;
    // `tag`: the chat's notification is replaced, not stacked; quietly, as a chat goes on.
    const notification = new api(title, { body: whatWasSent(message), tag: chat.id, icon: '/web/img/icon.svg' });
    notification.onclick = () => {
      globalThis.focus?.();
      onOpen(chat.id);
      close(chat.id);
    };
    shown.set(chat.id, { notification, seq: message.seq });
  }

  /** Closes the chat's notification (opened, or read) — only up to `seq` when given. */
  function close(chatId, seq = Infinity) {
    const entry = shown.get(chatId);
    if (!entry || entry.seq > seq) return;
    entry.notification.close();
    shown.delete(chatId);
  }

  function closeAll() {
    for (const chatId of [...shown.keys()]) close(chatId);
  }

  render();
  return { button, notify, close, stop: closeAll };
}
