// Signing in: by account name and password, or with the admin token ("Sign in with a token"),
// and the new password a user with a one-time password must choose before anything else.

import { state, api } from './api.js';
import { h, $, fill } from './ui.js';

function field(id, label, attrs, hint) {
  const input = h('input', { id, name: id, required: true, ...attrs });
  return [input, h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('span', { class: 'hint' }, hint) : null)];
}

// Remembers the answer of a sign-in or a password change, and goes on: to the forced password
// change, or to the page that was asked for.
function signedIn(s, current, done) {
  state.csrf = s.csrf;
  state.me = s;
  if (s.must_change) passwordView($('#main'), current, done);
  else done();
}

export function loginView(main, done, withToken = false) {
  $('#nav').hidden = true;
  $('#who').hidden = true;
  $('#signout').hidden = true;
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error' });
  const [name, nameField] = field('name', 'Name', { autocomplete: 'username', autocapitalize: 'none' });
  const [password, passwordField] = field('password', 'Password', { type: 'password', autocomplete: 'current-password' });
  const [token, tokenField] = field('token', 'Admin token', { type: 'password', autocomplete: 'off' },
    'Printed when Bifrost first started, and kept in DATA/admin.token.');
  const first = withToken ? token : name;
  const form = h('form', {
    class: 'card login',
    onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      const body = withToken ? { token: token.value.trim() } : { name: name.value.trim(), password: password.value };
      try {
        const s = await api('POST', '/session', body);
        const current = password.value;
        token.value = '';
        password.value = '';
        signedIn(s, current, done);
      } catch (e) {
        error.textContent = e.message;
        (withToken ? token : password).select();
      }
    },
  },
  h('h1', {}, 'Sign in to Bifrost'),
  ...(withToken ? [tokenField] : [nameField, passwordField]),
  error,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  h('p', {}, h('button', { type: 'button', class: 'link', onclick: () => loginView(main, done, !withToken) },
    withToken ? 'Sign in with a name and password' : 'Sign in with a token')));
  fill(main, form);
  first.focus();
}

// The forced change after `bifrost user add` or `reset`; `current` is the password just typed,
// if this follows the sign-in (after a reload it is asked for).
export function passwordView(main, current, done) {
  $('#nav').hidden = true;
  $('#who').hidden = true;
  $('#signout').hidden = false;
  const error = h('p', { class: 'error', role: 'alert', id: 'password-error' });
  const [cur, curField] = field('current', 'Current password', { type: 'password', autocomplete: 'current-password' });
  const [next, nextField] = field('new', 'New password', { type: 'password', autocomplete: 'new-password', minlength: 12 },
    'At least 12 characters.');
  const [again, againField] = field('again', 'New password again', { type: 'password', autocomplete: 'new-password' });
  cur.value = current || '';
  const form = h('form', {
    class: 'card login',
    onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      if (next.value !== again.value) { error.textContent = 'The new passwords differ.'; again.select(); return; }
      try {
        const s = await api('POST', '/session/password', { current: cur.value, new: next.value });
        for (const i of [cur, next, again]) i.value = '';
        signedIn(s, '', done);
      } catch (e) {
        error.textContent = e.message;
        next.select();
      }
    },
  },
  h('h1', {}, 'Choose a new password'),
  h('p', {}, 'Your password was made for one sign-in. Choose your own before you go on.'),
  curField, nextField, againField,
  error,
  h('button', { type: 'submit', class: 'primary' }, 'Save password'));
  fill(main, form);
  (current ? next : cur).focus();
}
