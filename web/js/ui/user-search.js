// user-search.js — finding people by name as one types: a search box and the people it finds,
// each a button. The "New chat" dialog and a group's "Add members" share it.

import { h, replaceChildren } from './dom.js';
import { avatar } from './chat-list.js';
import { apiErrorText } from './format.js';

const SEARCH_DELAY_MS = 200;

/**
 * Builds the box and its results list; the caller places them (and the box's label).
 * @param {object} o
 * @param {import('../api.js').Api} o.api
 * @param {string} o.inputId the box's id, for its `<label for>`
 * @param {string} o.resultsId the results list's id
 * @param {(user: object) => boolean} o.skip people not to offer (oneself, those picked already)
 * @param {(user: object) => void} o.onChoose
 * @param {HTMLElement} o.error where a failed search says why (cleared by the next one)
 * @param {string} [o.actionText] a word shown on each result ("Add"), when choosing acts at once
 * @returns {{input: HTMLInputElement, results: HTMLElement, run: () => Promise<void>, redraw: () => void}}
 *   `run` searches again; `redraw` shows the last answer again, asking `skip` afresh
 */
export function userSearch({ api, inputId, resultsId, skip, onChoose, error, actionText }) {
  let timer = null;
  /** Answers to older searches are dropped: only the newest query's may show. */
  let searchSeq = 0;
  /** The last answer shown: its query and the people found. */
  let last = null;

  const input = h('input', {
    type: 'search',
    id: inputId,
    placeholder: 'Search people by name',
    autocomplete: 'off',
    'aria-controls': resultsId,
    oninput: () => {
      clearTimeout(timer);
      timer = setTimeout(run, SEARCH_DELAY_MS);
    },
  });
  const results = h('ul', { class: 'user-results', id: resultsId, 'aria-label': 'People' });

  async function run() {
    const q = input.value.trim();
    const mine = ++searchSeq;
    error.textContent = '';
    if (!q) {
      last = null;
      replaceChildren(results);
      return;
    }
    try {
      const users = await api.searchUsers(q);
      if (mine !== searchSeq) return;
      last = { q, users };
      redraw();
    } catch (e) {
      if (mine === searchSeq) error.textContent = apiErrorText(e);
    }
  }

  function redraw() {
    if (!last) return;
    const users = last.users.filter((u) => !skip(u));
    if (users.length === 0) {
      replaceChildren(results, h('li', { class: 'hint' }, `Nobody found for “${last.q}”.`));
      return;
    }
    replaceChildren(
      results,
      users.map((u) =>
        h(
          'li',
          {},
          h(
            'button',
            { type: 'button', class: 'user-result', onclick: () => onChoose(u) },
            avatar({ id: u.id, name: u.displayName, url: u.avatarUrl }),
            h('span', { class: 'user-name' }, u.displayName),
            u.username ? h('span', { class: 'user-handle' }, `@${u.username}`) : null,
            actionText ? h('span', { class: 'user-action' }, actionText) : null,
          ),
        ),
      ),
    );
  }

  return { input, results, run, redraw };
}
