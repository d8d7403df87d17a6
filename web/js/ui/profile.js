// profile.js — the "Your profile" dialog: the name and picture everyone in your chats sees, a form
// to change the password, and the account's endings: signing out on every device, deactivating it.

import { h } from './dom.js';
import { openConfirm } from './confirm.js';
import { apiErrorText } from './format.js';

/**
 * Opens the dialog.
 * @param {{displayName: string, avatarUrl: string|null,
 *          onSave: (profile: {displayName: string, avatarUrl: string}) => Promise<void>,
 *          onChangePassword: (passwords: {currentPassword: string, newPassword: string}) => Promise<unknown>,
 *          onSignOutEverywhere: () => Promise<void>, onDeactivate: () => Promise<void>}} opts
 *   `onSave` makes the change (an empty `avatarUrl` removes the picture); `onChangePassword`
 *   changes the password; `onSignOutEverywhere` and `onDeactivate` end every session (and the
 *   account), asked for in a confirmation first. All reject with the API's error, which is shown.
 */
export function openProfile({ displayName, avatarUrl, onSave, onChangePassword, onSignOutEverywhere, onDeactivate }) {
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
  const passwordForm = changePasswordForm(onChangePassword);
  const dialog = h(
    'dialog',
    { class: 'sheet', 'aria-labelledby': 'profile-title' },
    h('h2', { id: 'profile-title' }, 'Your profile'),
    form,
    passwordForm,
    accountActions({ onSignOutEverywhere, onDeactivate, close: () => dialog.close() }),
  );
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

/** The password part of the dialog: the current password, a new one, and what came of it. */
function changePasswordForm(onChangePassword) {
  const error = h('p', { class: 'form-error', role: 'alert' });
  const done = h('p', { class: 'form-done', role: 'status' });
  const current = h('input', { type: 'password', id: 'profile-current-password', autocomplete: 'current-password' });
  const fresh = h('input', { type: 'password', id: 'profile-new-password', autocomplete: 'new-password', minlength: '8', maxlength: '128' });
  const change = h('button', { type: 'submit' }, 'Change password');
  const form = h(
    'form',
    { class: 'dialog-form password-form', novalidate: true, 'aria-labelledby': 'password-title', onsubmit: (e) => (e.preventDefault(), submit()) },
    h('h3', { id: 'password-title' }, 'Change password'),
    h('label', { for: 'profile-current-password' }, 'Current password'),
    current,
    h('label', { for: 'profile-new-password' }, 'New password'),
    fresh,
    h('p', { class: 'hint' }, 'At least 8 characters. Your other devices will be signed out.'),
    error,
    done,
    h('div', { class: 'dialog-actions' }, change),
  );
  return form;

  async function submit() {
    const passwords = { currentPassword: current.value, newPassword: fresh.value };
    done.textContent = '';
    if (!passwords.currentPassword || !passwords.newPassword) {
      error.textContent = 'Enter your current password and a new one.';
      return;
    }
    change.disabled = true;
    error.textContent = '';
    try {
      await onChangePassword(passwords);
      current.value = '';
      fresh.value = '';
      done.textContent = 'Your password is changed. Your other devices are signed out.';
    } catch (e) {
      error.textContent = passwordErrorText(e);
    } finally {
      change.disabled = false;
    }
  }
}

/** Signing out on every device, and deactivating the account: each asked again before it is done. */
function accountActions({ onSignOutEverywhere, onDeactivate, close }) {
  const ask = (question) => () =>
    openConfirm({
      ...question,
      errorText: apiErrorText,
      // Done, the app goes to the sign-in screen: this dialog goes with it.
      onConfirm: async () => {
        await question.onConfirm();
        close();
      },
    });
  return h(
    'section',
    { class: 'dialog-form account-actions', 'aria-labelledby': 'account-title' },
    h('h3', { id: 'account-title' }, 'Your account'),
    h('p', { class: 'hint' }, 'Lost a phone, or signed in somewhere you should not stay? Sign out on every device, this one too.'),
    h(
      'div',
      { class: 'dialog-actions' },
      h(
        'button',
        {
          type: 'button',
          onclick: ask({
            title: 'Sign out on all your devices?',
            text: 'Every device signed in to your account is signed out at once, this one too.',
            confirmLabel: 'Sign out everywhere',
            onConfirm: onSignOutEverywhere,
          }),
        },
        'Sign out everywhere',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          onclick: ask({
            title: 'Deactivate your account?',
            text: 'You are signed out everywhere and can never sign in again. Your messages stay in the chats you were in. This cannot be undone.',
            confirmLabel: 'Deactivate',
            onConfirm: onDeactivate,
          }),
        },
        'Deactivate account',
      ),
    ),
  );
}

/** The refusal of a password change in words: the field at fault, else the error's meaning. */
function passwordErrorText(e) {
  if (e.fields?.currentPassword) return 'Your current password is not right.';
  if (e.fields?.newPassword) return `The new password ${e.fields.newPassword}.`;
  return apiErrorText(e);
}
