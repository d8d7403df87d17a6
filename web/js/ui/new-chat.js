// new-chat.js — the "New chat" dialog: a direct chat with someone found by name, or a group.

import { h, replaceChildren } from './dom.js';
import { apiErrorText } from './format.js';
import { userSearch } from './user-search.js';

/**
 * Opens the dialog.
 * @param {{api: import('../api.js').Api, me: {id: string}, onCreated: (chat: object) => void}} opts
 */
export function openNewChat({ api, me, onCreated }) {
  let mode = 'direct';
  /** Members picked for a group: id → user. */
  const picked = new Map();

  const error = h('p', { class: 'form-error', role: 'alert' });
  const { input: search, results, run: runSearch } = userSearch({
    api,
    inputId: 'user-search',
    resultsId: 'user-results',
    skip: (u) => u.id === me.id || picked.has(u.id),
    onChoose: (u) => choose(u),
    error,
  });
  const chips = h('ul', { class: 'chips', 'aria-label': 'Members' });
  const title = h('input', { type: 'text', id: 'group-title', maxlength: '100', autocomplete: 'off' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create group');
  const groupPart = h(
    'div',
    { class: 'group-part' },
    h('label', { for: 'group-title' }, 'Group name'),
    title,
    h('p', { class: 'label' }, 'Members'),
    chips,
  );
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Kind of chat' });
  const form = h(
    'form',
    { method: 'dialog', class: 'new-chat-form', onsubmit: (e) => (e.preventDefault(), createGroup()) },
    tabs,
    groupPart,
    h('label', { for: 'user-search' }, 'Find people'),
    search,
    results,
    error,
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), create),
  );
  const dialog = h('dialog', { class: 'new-chat', 'aria-labelledby': 'new-chat-title' }, h('h2', { id: 'new-chat-title' }, 'New chat'), form);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  drawMode();
  dialog.showModal();
  search.focus();

  function drawMode() {
    const tab = (value, label) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          'aria-selected': String(mode === value),
          class: mode === value ? 'tab active' : 'tab',
          onclick: () => {
            mode = value;
            drawMode();
            search.focus();
          },
        },
        label,
      );
    replaceChildren(tabs, tab('direct', 'Direct message'), tab('group', 'Group'));
    groupPart.hidden = mode !== 'group';
    create.hidden = mode !== 'group';
    drawChips();
    runSearch();
  }

  function drawChips() {
    replaceChildren(
      chips,
      [...picked.values()].map((u) =>
        h(
          'li',
          {},
          h('button', { type: 'button', class: 'chip', 'aria-label': `Remove ${u.displayName}`, onclick: () => (picked.delete(u.id), drawChips(), runSearch()) }, u.displayName, ' ×'),
        ),
      ),
    );
    if (picked.size === 0) chips.append(h('li', { class: 'hint' }, 'Add people from the search below.'));
  }

  async function choose(user) {
    if (mode === 'group') {
      picked.set(user.id, user);
      search.value = '';
      drawChips();
      runSearch();
      search.focus();
      return;
    }
    await submit({ kind: 'direct', participantIds: [user.id] });
  }

  async function createGroup() {
    if (mode !== 'group') return;
    if (!title.value.trim()) {
      error.textContent = 'Give the group a name.';
      title.focus();
      return;
    }
    if (picked.size === 0) {
      error.textContent = 'Add at least one member.';
      search.focus();
      return;
    }
    await submit({ kind: 'group', title: title.value.trim(), participantIds: [...picked.keys()] });
  }

  async function submit(request) {
    error.textContent = '';
    try {
      const chat = await api.createChat(request);
      dialog.close();
      onCreated(chat);
    } catch (e) {
      error.textContent = apiErrorText(e);
    }
  }
}
