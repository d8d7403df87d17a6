// profile.js — the "Your profile" dialog: the name and picture everyone in your chats sees.

import { h } from './dom.js';
import { apiErrorText } from './format.js';

/**
 * Opens the dialog.
 * @param {{displayName: string, avatarUrl: string|null,
 *          onSave: (profile: {displayName: string, avatarUrl: string}) => Promise<void>}} opts
 *   `onSave` makes the change (an empty `avatarUrl` removes the picture); it rejects with the
 *   API's error, which the dialog shows.
 */
export function openProfile({ displayName, avatarUrl, onSave }) {
  const error = h('p', { class: 'form-error', role: 'alert' });
  const name = h('input', { type: 'text', id: 'profile-name', value: displayName, maxlength: '64', autocomplete: 'name' });
  const picture = h('input', { type: 'url', id: 'profile-picture', value: avatarUrl ?? '', placeholder: 'https://…', autocomplete: 'photo' });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const form = h(
    'form',
    { method: 'dialog', class: 'dialog-form', novalidate: true, onsubmit: (e) => (e.preventDefault(), submit()) },
    h('label', { for: 'profile-name' }, 'Your name'),
    name,
    h('label', { for: 'profile-picture' }, 'Picture (a link to an image, optional)'),
    picture,
    h('p', { class: 'hint' }, 'Everyone in your chats sees them.'),
    error,
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), save),
  );
  const dialog = h('dialog', { class: 'sheet', 'aria-labelledby': 'profile-title' }, h('h2', { id: 'profile-title' }, 'Your profile'), form);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  name.select();

  async function submit() {
    const wanted = { displayName: name.value.trim(), avatarUrl: picture.value.trim() };
    if (!wanted.displayName) {
      error.textContent = 'Your name cannot be empty.';
      return;
    }
    save.disabled = true;
    error.textContent = '';
    try {
      await onSave(wanted);
      dialog.close();
    } catch (e) {
      error.textContent = e.fields?.avatarUrl ? `The picture link ${e.fields.avatarUrl}.` : apiErrorText(e);
      save.disabled = false;
    }
  }
}
