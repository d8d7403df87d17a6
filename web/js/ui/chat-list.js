// chat-list.js — the sidebar: every chat with its avatar, title, last message, time and unread badge.

import { h, replaceChildren } from './dom.js';
import { colorIndex, initials, shortWhen } from './format.js';

/** An avatar: the picture when there is one (https only), else initials on a stable colour. */
export function avatar({ id, name, url, online }) {
  const picture =
    url && /^https:\/\//i.test(url)
      ? h('img', { src: url, alt: '', class: 'avatar-img', referrerpolicy: 'no-referrer' })
      : initials(name);
  return h(
    'span',
    { class: `avatar c${colorIndex(id)}`, 'aria-hidden': 'true' },
    picture,
    online === undefined ? null : h('span', { class: `presence ${online ? 'on' : 'off'}` }),
  );
}

/**
 * @param {HTMLElement} list the `<ul>`
 * @param {import('../store.js').Store} store
 * @param {string|null} activeId
 * @param {(chatId: string) => void} onOpen
 */
export function renderChatList(list, store, activeId, onOpen) {
  const chats = store.orderedChats();
  if (chats.length === 0) {
    replaceChildren(list, h('li', { class: 'empty' }, 'No chats yet. Start one with “New chat”.'));
    return;
  }
  replaceChildren(list, chats.map((chat) => item(store, chat, chat.id === activeId, onOpen)));
}

function item(store, chat, active, onOpen) {
  const title = store.title(chat);
  const other = chat.kind === 'direct' ? store.others(chat)[0] : null;
  const last = lastLine(store, chat);
  const typing = store.typingNames(chat.id);
  const when = chat.lastMessageAt ?? chat.createdAt;
  const unread = chat.unreadCount;
  const label = [title, unread ? `${unread} unread` : null, last ? `last message: ${last}` : null].filter(Boolean).join(', ');
  return h(
    'li',
    {},
    h(
      'button',
      {
        type: 'button',
        class: `chat-item${active ? ' active' : ''}${unread ? ' has-unread' : ''}`,
        'aria-current': active ? 'true' : null,
        'aria-label': label,
        dataset: { chatId: chat.id },
        onclick: () => onOpen(chat.id),
      },
      avatar({
        id: other?.userId ?? chat.id,
        name: title,
        url: other?.avatarUrl,
        online: other && store.presence.has(other.userId) ? store.presence.get(other.userId) : undefined,
      }),
      h(
        'span',
        { class: 'chat-item-main' },
        h('span', { class: 'chat-item-top' }, h('span', { class: 'chat-title' }, title), h('time', { class: 'chat-time', datetime: when }, shortWhen(when))),
        h(
          'span',
          { class: 'chat-item-bottom' },
          typing.length
            ? h('span', { class: 'chat-preview typing-preview' }, chat.kind === 'group' ? `${typing[0]} is typing…` : 'typing…')
            : h('span', { class: 'chat-preview' }, last ?? (chat.kind === 'group' ? 'Group created' : 'Say hello 👋')),
          unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, unread > 99 ? '99+' : String(unread)) : null,
        ),
      ),
    ),
  );
}

/**
 * "You: hi", "Ana: hi" (groups) or "hi", from the newest message (as edited) or a pending one;
 * "Message deleted" whoever sent it.
 */
function lastLine(store, chat) {
  const pending = store.pendingOf(chat.id).at(-1);
  if (pending) return `You: ${preview(pending)}`;
  const m = chat.lastMessage;
  if (!m) return null;
  if (m.deletedAt) return 'Message deleted';
  const text = preview(m);
  if (m.senderId === store.me?.id) return `You: ${text}`;
  if (chat.kind === 'group') return `${store.nameOf(m.senderId)}: ${text}`;
  return text;
}

/** A message in a line: its text; an image says so ("📷 Photo", or "📷 " and its caption). */
function preview(m) {
  const image = m.image || m.imageUrl;
  if (!image) return m.content;
  return m.content ? `📷 ${m.content}` : '📷 Photo';
}
