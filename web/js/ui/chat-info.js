// chat-info.js — a chat's info dialog, opened from its header. A group's ("Group info"): its name,
// which its owner and admins may change in place; its members with their roles, and what the
// signed-in user may do to each (the owner names admins and hands the group over; the owner and
// admins add people and remove anyone but the owner); and leaving it. A direct chat's ("Chat
// info"): the other person. The dialog follows the store, so a rename, a new role, someone joining
// or leaving shows as it happens, whoever did it; it closes when the chat is no longer the user's.

import { h, replaceChildren } from './dom.js';
import { avatar } from './chat-list.js';
import { openConfirm } from './confirm.js';
import { groupErrorText } from './format.js';
import { userSearch } from './user-search.js';

/** Members are listed owner first, then admins, then the others, each in the order they joined. */
const ROLE_RANK = { owner: 0, admin: 1, member: 2 };
const ROLE_BADGE = { owner: 'Owner', admin: 'Admin' };

/**
 * Opens the dialog. Escape or Close closes it; focus then goes back to the opener.
 * @param {object} o
 * @param {import('../store.js').Store} o.store
 * @param {import('../api.js').Api} o.api
 * @param {string} o.chatId
 * @param {(chatId: string) => void} o.onLeft the user has left the chat: it goes from the app
 * @param {() => HTMLElement|null} o.findReturn where focus goes when the chat is gone (left, or
 *   removed by an admin), and with it the opener
 */
export function openChatInfo({ store, api, chatId, onLeft, findReturn }) {
  const first = store.chats.get(chatId);
  if (!first) return null;
  const isGroup = first.kind === 'group';
  const opener = document.activeElement;
  /** The rename form while it is open ({input, error, save, saving}): what is typed outlives re-renders. */
  let renaming = null;
  /** Actions on their way, by their buttons' keys: a second click waits for the first. */
  const busy = new Set();
  /** What the last render showed, so that changes elsewhere in the chat (messages) rebuild nothing. */
  let shown = null;
  let gone = false;
  /** The "are you sure?" dialog open over this one: it goes too when the chat does. */
  let confirming = null;

  const nameArea = h('div', { class: 'info-name' });
  const notice = h('p', { class: 'info-notice', role: 'status' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const membersHeading = h('h3', { class: 'info-heading', id: 'members-heading', tabindex: '-1' });
  const members = h('ul', { class: 'members', 'aria-labelledby': 'members-heading' });
  const addError = h('p', { class: 'form-error', role: 'alert' });
  const search = userSearch({
    api,
    inputId: 'add-search',
    resultsId: 'add-results',
    skip: (u) => !!store.participant(chatId, u.id),
    onChoose: (u) => add(u),
    error: addError,
    actionText: 'Add',
  });
  const addToggle = h(
    'button',
    { type: 'button', class: 'add-toggle', 'aria-expanded': 'false', 'aria-controls': 'add-members', dataset: { key: 'add' }, onclick: toggleAdd },
    'Add members',
  );
  const addArea = h(
    'div',
    { class: 'add-members', id: 'add-members', hidden: true },
    h('label', { for: 'add-search' }, 'Find people to add'),
    search.input,
    search.results,
    addError,
  );
  const leave = isGroup ? h('button', { type: 'button', class: 'leave', dataset: { key: 'leave' }, onclick: confirmLeave }, 'Leave group') : null;
  const close = h('button', { type: 'button', class: 'info-close', 'aria-label': 'Close', onclick: () => dialog.close() }, '×');
  const dialog = h(
    'dialog',
    { class: 'sheet chat-info', 'aria-labelledby': 'chat-info-title' },
    h('div', { class: 'info-top' }, h('h2', { id: 'chat-info-title' }, isGroup ? 'Group info' : 'Chat info'), close),
    nameArea,
    notice,
    error,
    h('section', { class: 'info-members', 'aria-labelledby': 'members-heading' }, membersHeading, members),
    isGroup ? h('div', { class: 'info-add' }, addToggle, addArea) : null,
    leave ? h('div', { class: 'dialog-actions' }, leave) : null,
  );

  const onChange = (e) => {
    if (!e.detail.typing) render();
  };
  store.addEventListener('change', onChange);
  dialog.addEventListener('close', () => {
    store.removeEventListener('change', onChange);
    dialog.remove();
    const back = !gone && opener?.isConnected && opener !== document.body ? opener : findReturn?.();
    back?.focus({ preventScroll: true });
  });
  document.body.append(dialog);
  render();
  dialog.showModal();
  close.focus();
  return dialog;

  // --- rendering ------------------------------------------------------------------------------

  /** Draws what changed; closes the dialog when the chat is no longer the user's. */
  function render() {
    const chat = store.chats.get(chatId);
    if (!chat || !store.participant(chatId, store.me?.id)) {
      gone = true;
      if (confirming?.open) confirming.close();
      if (dialog.open) dialog.close();
      return;
    }
    const now = JSON.stringify([
      store.title(chat),
      store.me?.id,
      chat.participants.map((p) => [p.userId, p.displayName, p.avatarUrl, p.role, store.presence.get(p.userId)]),
      [...busy],
    ]);
    if (now === shown) return;
    shown = now;
    // Whatever had focus is drawn anew: find its successor by key (the same member's other
    // button when the one pressed is gone, e.g. "Make admin" became "Remove as admin").
    const focused = dialog.contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
    const manages = store.managesGroup(chat);
    renderName(chat, manages);
    renderMembers(chat);
    addToggle.hidden = !manages;
    if (!manages) showAdd(false);
    search.redraw(); // who is a member now is not offered
    if (focused) refocus(focused);
  }

  function renderName(chat, manages) {
    if (renaming && !manages) {
      renaming = null;
      say('You can no longer rename this group: you are not one of its admins any more.');
    }
    if (renaming) return; // the form stays as typed; the new name shows when it closes
    const other = isGroup ? null : store.others(chat)[0];
    const count = chat.participants.length;
    replaceChildren(
      nameArea,
      h(
        'div',
        { class: 'info-name-row' },
        h('p', { class: 'info-title' }, store.title(chat)),
        manages
          ? h('button', { type: 'button', class: 'rename', 'aria-label': 'Rename the group', dataset: { key: 'rename' }, onclick: startRename }, 'Rename')
          : null,
      ),
      h('p', { class: 'info-sub' }, isGroup ? `Group · ${count} ${count === 1 ? 'member' : 'members'}` : presenceText(other)),
    );
  }

  function renderMembers(chat) {
    const me = store.me?.id;
    const people = isGroup ? [...chat.participants].sort((a, b) => (ROLE_RANK[a.role] ?? 3) - (ROLE_RANK[b.role] ?? 3)) : chat.participants;
    membersHeading.textContent = isGroup ? 'Members' : 'In this chat';
    const myRole = store.myRole(chat);
    replaceChildren(
      members,
      people.map((p) => {
        const online = p.userId === me || !store.presence.has(p.userId) ? undefined : store.presence.get(p.userId);
        return h(
          'li',
          { class: 'member', dataset: { userId: p.userId } },
          avatar({ id: p.userId, name: p.displayName, url: p.avatarUrl, online }),
          h(
            'span',
            { class: 'member-main' },
            h('span', { class: 'member-name' }, p.displayName),
            p.userId === me ? h('span', { class: 'member-you' }, '(you)') : null,
            online === undefined ? null : h('span', { class: 'sr-only' }, online ? 'online' : 'offline'),
          ),
          isGroup && ROLE_BADGE[p.role] ? h('span', { class: `role-badge ${p.role}` }, ROLE_BADGE[p.role]) : null,
          memberActions(p, myRole),
        );
      }),
    );
  }

  /**
   * What I may do to a member, as the server allows it: the owner names and unnames admins and
   * hands the group over; the owner and admins remove anyone but the owner. Nothing to myself:
   * "Leave group" is for that.
   */
  function memberActions(p, myRole) {
    if (!isGroup || p.userId === store.me?.id) return null;
    const buttons = [];
    if (myRole === 'owner') {
      buttons.push(
        p.role === 'admin'
          ? action(p, 'admin', 'Remove as admin', () => changeRole(p, 'member'))
          : action(p, 'admin', 'Make admin', () => changeRole(p, 'admin')),
        action(p, 'owner', 'Make owner', () => confirmHandOver(p)),
      );
    }
    if ((myRole === 'owner' || myRole === 'admin') && p.role !== 'owner') {
      buttons.push(action(p, 'remove', 'Remove from group', () => confirmRemove(p)));
    }
    return buttons.length ? h('span', { class: 'member-actions' }, buttons) : null;
  }

  /** A member's action button; its name says whom it is for. Busy, it stays focusable but inert. */
  function action(p, kind, label, act) {
    const key = `${p.userId}:${kind}`;
    const waiting = busy.has(key);
    return h(
      'button',
      {
        type: 'button',
        class: `member-action ${kind}`,
        'aria-label': `${label}: ${p.displayName}`,
        'aria-disabled': waiting ? 'true' : null,
        dataset: { key },
        onclick: () => waiting || act(),
      },
      label,
    );
  }

  function refocus(key) {
    const byKey = (k) => dialog.querySelector(`[data-key="${CSS.escape(k)}"]`);
    const [userId] = key.split(':');
    const row = members.querySelector(`.member[data-user-id="${CSS.escape(userId)}"]`);
    const target = byKey(key) ?? row?.querySelector('button') ?? (key.includes(':') ? membersHeading : null);
    if (target && target !== document.activeElement) target.focus({ preventScroll: true });
  }

  function presenceText(person) {
    if (!person) return 'Just you';
    if (!store.presence.has(person.userId)) return 'Direct chat';
    return store.presence.get(person.userId) ? 'Online' : 'Offline';
  }

  /** A line for screen readers and eyes: what was just done. */
  function say(text) {
    notice.textContent = text;
  }

  // --- renaming -------------------------------------------------------------------------------

  function startRename() {
    const chat = store.chats.get(chatId);
    say('');
    const input = h('input', {
      type: 'text',
      id: 'rename-input',
      value: chat.title ?? '',
      autocomplete: 'off',
      'aria-describedby': 'rename-hint rename-error',
      onkeydown: (e) => {
        // Escape cancels the rename only; the dialog stays open.
        if (e.key !== 'Escape' || e.isComposing) return;
        e.preventDefault();
        e.stopPropagation();
        endRename();
      },
    });
    const formError = h('p', { class: 'form-error', role: 'alert', id: 'rename-error' });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const form = h(
      'form',
      { class: 'rename-form', novalidate: true, onsubmit: (e) => (e.preventDefault(), saveRename()) },
      h('label', { for: 'rename-input' }, 'Group name'),
      h('div', { class: 'rename-row' }, input, save, h('button', { type: 'button', onclick: endRename }, 'Cancel')),
      h('p', { class: 'hint', id: 'rename-hint' }, 'Enter saves, Escape cancels'),
      formError,
    );
    renaming = { input, formError, save, saving: false };
    replaceChildren(nameArea, form);
    input.focus();
    input.select();
  }

  /**
   * Sends the new name. The server has the last word on what a name may be (not blank, not too
   * long): its reason is shown, and what was typed stays to fix.
   */
  async function saveRename() {
    const current = renaming;
    if (!current || current.saving) return;
    const title = current.input.value;
    if (title === store.chats.get(chatId)?.title) {
      endRename();
      return;
    }
    current.saving = true;
    current.save.disabled = true;
    current.formError.textContent = '';
    current.input.removeAttribute('aria-invalid');
    try {
      const chat = await api.renameChat(chatId, title);
      store.renameChat(chatId, chat.title);
      if (renaming === current) {
        endRename();
        say(`The group is now called “${chat.title}”.`);
      }
    } catch (e) {
      if (renaming !== current) return;
      current.formError.textContent = groupErrorText(e);
      current.input.setAttribute('aria-invalid', 'true');
      current.input.focus();
    } finally {
      current.saving = false;
      current.save.disabled = false;
    }
  }

  /** Closes the form, saved or not; focus goes back to Rename. */
  function endRename() {
    renaming = null;
    shown = null;
    render();
    dialog.querySelector('[data-key="rename"]')?.focus();
  }

  // --- members --------------------------------------------------------------------------------

  /** Runs a member's action with its button inert meanwhile; answers whether it went through. */
  async function run(key, act) {
    if (busy.has(key)) return false;
    busy.add(key);
    error.textContent = '';
    render();
    try {
      await act();
      return true;
    } finally {
      busy.delete(key);
      render();
    }
  }

  /** Makes a member an admin, or a member again. The owner only; no confirmation: it can be undone. */
  async function changeRole(p, role) {
    try {
      if (!(await run(`${p.userId}:admin`, () => setRole(p, role)))) return;
      say(role === 'admin' ? `${p.displayName} is now an admin.` : `${p.displayName} is no longer an admin.`);
    } catch (e) {
      error.textContent = groupErrorText(e);
    }
  }

  /**
   * Sets a role and applies the answer at once, for the member and for me (a hand-over changes
   * both); the `participant_role_changed` frames that follow change nothing more.
   */
  async function setRole(p, role) {
    const chat = await api.setRole(chatId, p.userId, role);
    for (const id of [p.userId, store.me?.id]) {
      const now = chat.participants.find((x) => x.userId === id);
      if (now) store.setRole(chatId, id, now.role);
    }
  }

  function confirmHandOver(p) {
    const title = store.title(store.chats.get(chatId));
    confirming = openConfirm({
      title: `Make ${p.displayName} the owner?`,
      text:
        `${p.displayName} will own “${title}”: only they will be able to name admins and hand the group on. ` +
        'You will become an admin, and cannot take the group back unless they hand it to you.',
      confirmLabel: 'Make owner',
      errorText: groupErrorText,
      findReturn: () => dialog.querySelector(`[data-key="${CSS.escape(`${p.userId}:owner`)}"]`) ?? membersHeading,
      onConfirm: async () => {
        if (await run(`${p.userId}:owner`, () => setRole(p, 'owner'))) say(`${p.displayName} now owns the group. You are an admin.`);
      },
    });
  }

  function confirmRemove(p) {
    const title = store.title(store.chats.get(chatId));
    confirming = openConfirm({
      title: `Remove ${p.displayName} from the group?`,
      text: `${p.displayName} will no longer get the messages of “${title}”, and it goes from their chat list.`,
      confirmLabel: 'Remove',
      errorText: groupErrorText,
      // The button goes with the member: focus then goes to the list.
      findReturn: () => dialog.querySelector(`[data-key="${CSS.escape(`${p.userId}:remove`)}"]`) ?? membersHeading,
      onConfirm: async () => {
        if (!(await run(`${p.userId}:remove`, () => api.removeParticipant(chatId, p.userId)))) return;
        // At once, whether or not `participant_left` is on its way (the connection may be down).
        store.removeParticipant(chatId, p.userId);
        say(`${p.displayName} was removed from the group.`);
      },
    });
  }

  function toggleAdd() {
    showAdd(addArea.hidden);
    if (!addArea.hidden) search.input.focus();
  }

  function showAdd(open) {
    addArea.hidden = !open;
    addToggle.setAttribute('aria-expanded', String(open));
  }

  async function add(user) {
    addError.textContent = '';
    try {
      const added = await run(`add:${user.id}`, async () => {
        const chat = await api.addParticipants(chatId, [user.id]);
        store.addParticipants(chatId, chat.participants);
      });
      if (!added) return;
      say(`${user.displayName} was added to the group.`);
      search.input.focus(); // the result pressed is gone: back to the search, for the next one
    } catch (e) {
      addError.textContent = groupErrorText(e);
    }
  }

  // --- leaving --------------------------------------------------------------------------------

  function confirmLeave() {
    const chat = store.chats.get(chatId);
    const title = store.title(chat);
    const me = store.me?.id;
    // The server hands the group to its longest-standing admin, or without one to its
    // longest-standing member: participants come in the order they joined.
    const others = chat.participants.filter((p) => p.userId !== me);
    const admin = others.find((p) => p.role === 'admin');
    const heir = admin ?? others[0];
    const owner = store.myRole(chat) === 'owner';
    const parts = ['You will no longer get its messages, and it goes from your chat list. Only its owner or an admin can add you again.'];
    if (owner && heir) {
      parts.unshift(`You own this group: ${heir.displayName}, its longest-standing ${admin ? 'admin' : 'member'}, will become its owner.`);
    }
    confirming = openConfirm({
      title: `Leave “${title}”?`,
      text: parts.join(' '),
      confirmLabel: 'Leave',
      errorText: groupErrorText,
      findReturn,
      onConfirm: async () => {
        await api.leaveChat(chatId);
        // At once, whether or not `conversation_left` is on its way: this closes the dialog too.
        onLeft(chatId);
      },
    });
  }
}
