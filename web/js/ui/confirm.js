// confirm.js — an in-page "are you sure?" dialog for what cannot be undone. Never the browser's
// own confirm(): it blocks the page (live events stop being shown) and looks like another site's.

import { h } from './dom.js';

/**
 * Opens the dialog. Escape or Cancel closes it without acting; focus then goes back where it was.
 * @param {object} o
 * @param {string} o.title the question ("Delete this message?")
 * @param {string} o.text what follows from it
 * @param {string} [o.quote] what it is about, quoted
 * @param {string} o.confirmLabel the button that acts ("Delete")
 * @param {() => Promise<void>} o.onConfirm acts; the dialog closes when it resolves, and shows
 *   `errorText(error)` and stays when it rejects
 * @param {(error: Error) => string} o.errorText
 * @param {() => HTMLElement|null} [o.findReturn] where focus goes if the opener is gone by then
 *   (re-rendered, or removed by the action itself)
 */
export function openConfirm({ title, text, quote, confirmLabel, onConfirm, errorText, findReturn }) {
  const opener = document.activeElement;
  const error = h('p', { class: 'form-error', role: 'alert' });
  const confirm = h('button', { type: 'submit', class: 'danger' }, confirmLabel);
  const cancel = h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel');
  const form = h(
    'form',
    { method: 'dialog', class: 'dialog-form', onsubmit: (e) => (e.preventDefault(), act()) },
    h('p', { id: 'confirm-text', class: 'confirm-text' }, text),
    quote ? h('blockquote', { class: 'confirm-quote' }, quote) : null,
    error,
    h('div', { class: 'dialog-actions' }, cancel, confirm),
  );
  const dialog = h(
    'dialog',
    { class: 'sheet confirm', role: 'alertdialog', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text' },
    h('h2', { id: 'confirm-title' }, title),
    form,
  );
  dialog.addEventListener('close', () => {
    dialog.remove();
    const back = opener?.isConnected && opener !== document.body ? opener : findReturn?.();
    back?.focus({ preventScroll: true });
  });
  document.body.append(dialog);
  dialog.showModal();
  // The safe choice has focus: Enter on a dialog that opened by surprise undoes nothing.
  cancel.focus();

  async function act() {
    confirm.disabled = true;
    error.textContent = '';
    try {
      await onConfirm();
      dialog.close();
    } catch (e) {
      error.textContent = errorText(e);
      confirm.disabled = false;
    }
  }
  return dialog;
}
