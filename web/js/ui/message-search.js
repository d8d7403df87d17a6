// message-search.js — finding messages by their text, across one's chats: a search field above the
// chat list and, while it holds a query, the messages found in the list's place, newest first, the
// match marked. Choosing one opens its chat at that message.

import { h, replaceChildren } from './dom.js';
import { apiErrorText, shortWhen } from './format.js';

/** Wait this long after the last keystroke before asking the server. */
const SEARCH_DELAY_MS = 250;
/** The server's shortest query (after trimming, in characters): a shorter one is not sent. */
const MIN_CHARS = 2;
/** A long message is shown from a little before its first match, so that the match is in sight. */
const EXCERPT_LEAD = 40;

/**
 * Builds the field and the results; the caller places them, and hides its chat list while
 * `onSearching(true)`.
 * @param {object} o
 * @param {import('../api.js').Api} o.api
 * @param {import('../store.js').Store} o.store chats' names and senders' names
 * @param {(message: object) => void} o.onOpen a result was chosen
 * @param {(searching: boolean) => void} o.onSearching results replace the chat list, or go
 * @returns {{field: HTMLElement, input: HTMLInputElement, results: HTMLElement}}
 */
export function messageSearch({ api, store, onOpen, onSearching }) {
  let timer = null;
  /** The request in flight, aborted when a newer search starts. */
  let inFlight = null;
  /** Answers to older searches are dropped: only the newest one's may show. */
  let searchSeq = 0;
  /** What is shown: the query and the messages found so far. */
  let shown = null;
  let searching = false;

  const input = h('input', {
    type: 'search',
    id: 'message-search',
    class: 'search-input',
    placeholder: 'Search messages',
    autocomplete: 'off',
    enterkeyhint: 'search',
    'aria-controls': 'search-results',
    oninput: onInput,
    onkeydown: (e) => {
      // Enter searches at once, without waiting for the pause.
      if (e.key === 'Enter' && !e.isComposing && timer) {
        e.preventDefault();
        clearTimeout(timer);
        timer = null;
        run(input.value.trim());
      }
    },
  });
  const status = h('p', { class: 'search-status', role: 'status' });
  const list = h('ul', { class: 'search-list', 'aria-label': 'Messages found' });
  const more = h('button', { type: 'button', class: 'more-results', hidden: true, onclick: loadMore }, 'More results');
  const field = h(
    'div',
    { class: 'search', role: 'search', onkeydown: onEscape },
    h('label', { for: 'message-search', class: 'sr-only' }, 'Search messages'),
    input,
  );
  const results = h(
    'section',
    { class: 'search-results', id: 'search-results', 'aria-label': 'Search results', hidden: true, onkeydown: onEscape },
    status,
    list,
    more,
  );

  function onInput() {
    clearTimeout(timer);
    timer = null;
    const q = input.value.trim();
    if (!q) {
      stop(); // cleared: the chat list is back
      return;
    }
    show();
    if ([...q].length < MIN_CHARS) {
      cancel();
      shown = null;
      replaceChildren(list);
      more.hidden = true;
      status.textContent = `Type at least ${MIN_CHARS} characters to search messages.`;
      return;
    }
    timer = setTimeout(() => {
      timer = null;
      run(q);
    }, SEARCH_DELAY_MS);
  }

  /** Escape in the field or the results ends the search; with nothing searched, it is left to others. */
  function onEscape(e) {
    if (e.key !== 'Escape' || e.isComposing || (!searching && !input.value)) return;
    e.preventDefault(); // a chat open beside stays open
    input.value = '';
    stop();
    input.focus();
  }

  /** Searches `q` afresh, or (`before`) for the next, older page of it. */
  async function run(q, before) {
    cancel();
    const mine = searchSeq;
    inFlight = new AbortController();
    if (!before) status.textContent = 'Searching…';
    try {
      const page = await api.searchMessages(q, { before, signal: inFlight.signal });
      if (mine !== searchSeq) return;
      inFlight = null;
      if (before) {
        shown.messages.push(...page.messages);
        shown.hasMore = page.hasMore;
        const added = page.messages.map((m) => result(m, q));
        list.append(...added);
        added[0]?.querySelector('button').focus();
      } else {
        shown = { q, messages: [...page.messages], hasMore: page.hasMore };
        replaceChildren(list, shown.messages.map((m) => result(m, q)));
      }
      more.hidden = !shown.hasMore;
      moreLoaded();
      status.textContent = summary(shown);
    } catch (error) {
      if (mine !== searchSeq || error?.name === 'AbortError') return;
      inFlight = null;
      if (before) moreLoaded();
      else {
        shown = null;
        replaceChildren(list);
        more.hidden = true;
      }
      status.textContent = searchErrorText(error);
    }
  }

  /** The next page; the button keeps focus (not disabled) until the results it brings take it. */
  function loadMore() {
    if (!shown?.hasMore || more.getAttribute('aria-disabled') === 'true') return;
    more.setAttribute('aria-disabled', 'true');
    more.textContent = 'Loading…';
    run(shown.q, shown.messages.at(-1).id);
  }

  function moreLoaded() {
    more.removeAttribute('aria-disabled');
    more.textContent = 'More results';
  }

  /** Forgets the search in flight: its answer, when it comes, is dropped. */
  function cancel() {
    searchSeq += 1;
    inFlight?.abort();
    inFlight = null;
  }

  function show() {
    if (searching) return;
    searching = true;
    results.hidden = false;
    onSearching(true);
  }

  function stop() {
    clearTimeout(timer);
    timer = null;
    cancel();
    shown = null;
    replaceChildren(list);
    more.hidden = true;
    moreLoaded();
    status.textContent = '';
    if (!searching) return;
    searching = false;
    results.hidden = true;
    onSearching(false);
  }

  /** One message found: its chat, sender, time and text, the match marked. */
  function result(m, q) {
    const chat = store.chats.get(m.chatId);
    const sender = m.senderId === store.me?.id ? 'You' : (store.participant(m.chatId, m.senderId)?.displayName ?? store.nameOf(m.senderId));
    return h(
      'li',
      {},
      h(
        'button',
        { type: 'button', class: 'search-result', dataset: { chatId: m.chatId, seq: String(m.seq) }, onclick: () => onOpen(m) },
        h(
          'span',
          { class: 'result-top' },
          h('span', { class: 'result-chat' }, chat ? store.title(chat) : 'A chat'),
          h('time', { class: 'result-time', datetime: m.createdAt, title: new Date(m.createdAt).toLocaleString() }, shortWhen(m.createdAt)),
        ),
        h('span', { class: 'result-text' }, h('span', { class: 'result-sender' }, `${sender}: `), marked(excerpt(m.content, q), q)),
      ),
    );
  }

  return { field, input, results };
}

/** "3 messages found", and whether there are more. */
function summary({ q, messages, hasMore }) {
  if (messages.length === 0) return `No messages found for “${q}”.`;
  const found = messages.length === 1 ? '1 message found' : `${messages.length} messages found`;
  return hasMore ? `${found}; there are more.` : `${found}.`;
}

/** Why a search was refused: the server's reason for a query it does not take. */
function searchErrorText(error) {
  if (error?.code === 'validation_failed' && error.fields?.q) return `This search cannot be run: the text ${error.fields.q}.`;
  return apiErrorText(error);
}

/** The occurrences of `q` in `text` (ignoring case), for a pattern. */
function matcher(q) {
  return new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'giu');
}

/** A long text from shortly before its first match (at a word's start), so the match shows. */
function excerpt(text, q) {
  const first = text.search(matcher(q));
  if (first <= EXCERPT_LEAD) return text;
  let start = first - EXCERPT_LEAD / 2;
  const space = text.indexOf(' ', start);
  if (space !== -1 && space < first) start = space + 1;
  else if (/[\udc00-\udfff]/.test(text[start])) start += 1; // not half a character
  return `…${text.slice(start)}`;
}

/** `text` as nodes, each match of `q` (ignoring case) in a `<mark>`. */
export function marked(text, q) {
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(matcher(q))) {
    if (match.index > at) parts.push(text.slice(at, match.index));
    parts.push(h('mark', {}, match[0]));
    at = match.index + match[0].length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}
