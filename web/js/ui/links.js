// links.js — the web addresses in a message's text as links: `http://` and `https://` ones, and
// those that begin with `www.` (opened over https). Nothing else becomes a link (no `javascript:`,
// no `data:`), the text shows as it was written, and a link opens in a new tab without telling the
// site which page it came from.

import { h } from './dom.js';

/** A candidate address: a scheme or `www.`, then anything up to a space or a character URLs never hold raw. */
const CANDIDATE = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;
/** Punctuation that ends a sentence rather than the address when it comes last. */
const TRAILING = /[.,;:!?'"»”’*_~]+$/;

/**
 * `text` as strings and `<a>` elements, in order; joined, their text is `text` exactly.
 * @param {string} text
 * @returns {(string|HTMLAnchorElement)[]}
 */
export function withLinks(text) {
  const parts = [];
  let from = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const written = trim(match[0]);
    const href = target(written);
    if (!href) continue;
    if (match.index > from) parts.push(text.slice(from, match.index));
    parts.push(h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', class: 'msg-link' }, written));
    from = match.index + written.length;
  }
  if (from < text.length) parts.push(text.slice(from));
  return parts;
}

/**
 * Takes off what most likely belongs to the sentence: trailing punctuation, and a closing bracket
 * that has no opening one in the address (as in "(see https://example.com)").
 */
function trim(candidate) {
  let url = candidate;
  for (;;) {
    const before = url;
    url = url.replace(TRAILING, '');
    for (const [open, close] of ['()', '[]']) {
      while (url.endsWith(close) && count(url, close) > count(url, open)) url = url.slice(0, -1);
    }
    if (url === before) return url;
  }
}

function count(text, char) {
  return text.split(char).length - 1;
}

/** Where a written address leads, or null when it is not one to open: only http(s) with a host. */
function target(written) {
  const withScheme = /^www\./i.test(written) ? `https://${written}` : written;
  try {
    const url = new URL(withScheme);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) return null;
    return url.href;
  } catch {
    return null;
  }
}
