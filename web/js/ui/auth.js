// auth.js — the sign-in / create-account screen.

import { apiErrorText } from './format.js';
import { h, replaceChildren } from './dom.js';

/**
 * Renders into `root`. `notice` is shown above the form (e.g. "your session expired").
 * @param {{root: HTMLElement, session: import('../session.js').Session, notice?: string, onSignedIn: () => void}} opts
 */
export function renderAuth({ root, session, notice, onSignedIn }) {
  let mode = 'login';
  const screen = h('main', { class: 'auth', 'aria-labelledby': 'auth-title' });
  replaceChildren(root, screen);
  draw();

  function draw() {
    const isLogin = mode === 'login';
    const status = h('p', { class: 'form-error', role: 'alert', id: 'auth-error' });
    const fields = isLogin
      ? [
          field('login', 'Username or email', { autocomplete: 'username', required: true }),
          field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
        ]
      : [
          field('displayName', 'Your name', { autocomplete: 'name', required: true, maxlength: 100 }),
          field('username', 'Username', { autocomplete: 'username', required: true, maxlength: 32 }),
          field('email', 'Email', { type: 'email', autocomplete: 'email', required: true }),
          field('password', 'Password', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
        ];
    const submit = h('button', { type: 'submit', class: 'primary' }, isLogin ? 'Sign in' : 'Create account');
    const form = h('form', { class: 'auth-form', novalidate: true, 'aria-describedby': 'auth-error' }, fields, status, submit);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form));
      for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
      status.textContent = '';
      submit.disabled = true;
      try {
        if (isLogin) await session.login(values.login.trim(), values.password);
        else await session.register({ ...values, username: values.username.trim(), email: values.email.trim() });
        onSignedIn();
      } catch (e) {
        status.textContent = apiErrorText(e);
        for (const [name, message] of Object.entries(e.fields ?? {})) {
          const slot = form.querySelector(`#err-${CSS.escape(name)}`);
          if (slot) slot.textContent = message;
        }
        submit.disabled = false;
      }
    });
    replaceChildren(
      screen,
      h(
        'div',
        { class: 'auth-card' },
        h('h1', { id: 'auth-title', class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '◆'), ' Converge'),
        h('p', { class: 'tagline' }, isLogin ? 'Welcome back. Sign in to chat.' : 'Create your account to start chatting.'),
        notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
        form,
        h(
          'p',
          { class: 'switch' },
          isLogin ? 'New here? ' : 'Have an account? ',
          h(
            'button',
            {
              type: 'button',
              class: 'link',
              onclick: () => {
                mode = isLogin ? 'register' : 'login';
                notice = null;
                draw();
              },
            },
            isLogin ? 'Create an account' : 'Sign in',
          ),
        ),
      ),
    );
    form.querySelector('input').focus();
  }
}

function field(name, label, attrs) {
  const id = `f-${name}`;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, name, type: 'text', 'aria-describedby': `err-${name}`, ...attrs }),
    h('span', { class: 'field-error', id: `err-${name}`, 'aria-live': 'polite' }),
  );
}
