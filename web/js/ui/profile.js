// profile.js — the "Your profile" dialog: the name everyone in your chats sees.

import { h } from './dom.js';
import { apiErrorText } from './format.js';

/**
 * Opens the dialog.
 * @param {{displayName: string, onSave: (displayName: string) => Promise<void>}} opts
 *   `onSave` makes the change; it rejects with the API's error, which the dialog shows.
 */
export function openProfile({ displayName, onSave }) {
  const error = h('p', { class: 'form-error', role: 'alert' });
  const name = h('input', { type: 'text', id: 'profile-name', value: displayName, maxlength: '64', autocomplete: 'name' });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const form = h(
    'form',
    { method: 'dialog', class: 'dialog-form', onsubmit: (e) => (e.preventDefault(), submit()) },
    h('label', { for: 'profile-name' }, 'Your name'),
    name,
    h('p', { class: 'hint' }, 'Everyone in your chats sees it.'),
    error,
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), save),
  );
  const dialog = h('dialog', { class: 'sheet', 'aria-labelledby': 'profile-title' }, h('h2', { id: 'profile-title' }, 'Your profile'), form);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  name.select();

  async function submit() {
    const wanted = name.value.trim();
    if (!wanted) {
      error.textContent = 'Your name cannot be empty.';
      return;
    }
    save.disabled = true;
    error.textContent = '';
    try {
      await onSave(wanted);
      dialog.close();
    } catch (e) {
      error.textContent = apiErrorText(e);
      save.disabled = false;
    }
  }
}
