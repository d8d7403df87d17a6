// reactions.js — a message's reactions, as chips under it that toggle mine ("👍 2"), and the picker
// of common emoji that its React action opens. Both are drawn from the message as the store has it:
// the conversation is re-rendered on every change, and draws them again.

import { h } from './dom.js';
import { listNames } from './format.js';

/** What the picker offers, fully qualified as the server stores them (❤️, not ❤), with names. */
export const COMMON_EMOJI = [
  ['👍', 'Thumbs up'],
  ['❤️', 'Red heart'],
  ['😂', 'Face with tears of joy'],
  ['😮', 'Face with open mouth'],
  ['😢', 'Crying face'],
  ['🎉', 'Party popper'],
  ['🙏', 'Folded hands'],
  ['👀', 'Eyes'],
];

/** The emoji of `reactions` (a message's) that I gave. */
export function myReactions(reactions, me) {
  return new Set((reactions ?? []).filter((r) => r.userIds.includes(me)).map((r) => r.emoji));
}

/**
 * A message's reactions as they will be once my changes on their way are applied: `wishes` maps an
 * emoji to my change of it, `{on}`: true, I give it; false, I take mine back. An emoji only my wish
 * brings goes last, as the server will put it.
 * @param {{emoji: string, userIds: string[]}[]} [reactions]
 * @param {Map<string, {on: boolean}>} [wishes]
 * @param {string} me
 */
export function withWishes(reactions = [], wishes, me) {
  if (!wishes?.size) return reactions;
  const shown = reactions
    .map(({ emoji, userIds }) => {
      const on = wishes.get(emoji)?.on;
      if (on === undefined || on === userIds.includes(me)) return { emoji, userIds };
      return { emoji, userIds: on ? [...userIds, me] : userIds.filter((id) => id !== me) };
    })
    .filter((r) => r.userIds.length > 0);
  for (const [emoji, { on }] of wishes) {
    if (on && !reactions.some((r) => r.emoji === emoji)) shown.push({ emoji, userIds: [me] });
  }
  return shown;
}

/**
 * The chips of a message's reactions, in the order first given, or null when it has none. A chip
 * is pressed when I am among those who gave it, and its title names them; `onToggle(emoji, on)`
 * adds my reaction (`on`) or takes it back. A chip of an emoji in `unsent` shows my change of it
 * that the server has not answered yet (offline, it waits for the connection).
 * @param {object} o
 * @param {{emoji: string, userIds: string[]}[]} [o.reactions]
 * @param {string} o.me my user id
 * @param {(userId: string) => string} o.nameOf
 * @param {(emoji: string, on: boolean) => void} o.onToggle
 * @param {{has: (emoji: string) => boolean}} [o.unsent] (a Set, or a Map by emoji)
 */
export function reactionChips({ reactions, me, nameOf, onToggle, unsent }) {
  if (!reactions?.length) return null;
  return h(
    'div',
    { class: 'reactions' },
    reactions.map(({ emoji, userIds }) => {
      const count = userIds.length;
      const mine = userIds.includes(me);
      const who = listNames(userIds.map((id) => (id === me ? 'you' : nameOf(id))));
      let label = `${emoji}: ${count} ${count === 1 ? 'reaction' : 'reactions'}`;
      if (mine) label += count === 1 ? ', yours' : ', including yours';
      let title = `${who.charAt(0).toUpperCase()}${who.slice(1)} reacted with ${emoji}`;
      const waiting = unsent?.has(emoji);
      if (waiting) {
        label += ', your change not sent yet';
        title += ' (your change is not sent yet)';
      }
      return h(
        'button',
        {
          type: 'button',
          class: waiting ? 'reaction unsent' : 'reaction',
          'aria-pressed': String(mine),
          'aria-label': label,
          title,
          dataset: { emoji },
          onclick: () => onToggle(emoji, !mine),
        },
        h('span', { class: 'reaction-emoji', 'aria-hidden': 'true' }, emoji),
        ' ',
        h('span', { class: 'reaction-count', 'aria-hidden': 'true' }, String(count)),
      );
    }),
  );
}

/**
 * The row of common emoji to react with: a toolbar, so one Tab stop; the arrow keys move along it
 * (Home and End to its ends), Enter or Space picks, Escape closes. The emoji I already gave show
 * pressed, and picking one takes it back.
 * @param {object} o
 * @param {string} o.id
 * @param {string} o.label the toolbar's name (which message it reacts to)
 * @param {string} o.active the emoji that is the toolbar's Tab stop
 * @param {Set<string>} o.given the emoji I gave to this message
 * @param {(emoji: string, on: boolean) => void} o.onPick
 * @param {(emoji: string) => void} o.onMove the Tab stop moved (kept across re-renders)
 * @param {() => void} o.onEscape
 * @param {(event: FocusEvent) => void} o.onFocusOut
 */
export function reactionPicker({ id, label, active, given, onPick, onMove, onEscape, onFocusOut }) {
  const options = COMMON_EMOJI.map(([emoji, name]) =>
    h(
      'button',
      {
        type: 'button',
        class: 'reaction-option',
        tabindex: emoji === active ? '0' : '-1',
        'aria-pressed': String(given.has(emoji)),
        'aria-label': name,
        title: name,
        dataset: { emoji },
        onclick: () => onPick(emoji, !given.has(emoji)),
      },
      h('span', { 'aria-hidden': 'true' }, emoji),
    ),
  );
  const moveTo = (option) => {
    for (const o of options) o.tabIndex = o === option ? 0 : -1;
    option.focus();
    onMove(option.dataset.emoji);
  };
  const onkeydown = (event) => {
    const at = options.indexOf(document.activeElement);
    const next = {
      ArrowRight: at + 1,
      ArrowLeft: at - 1,
      Home: 0,
      End: options.length - 1,
    }[event.key];
    if (event.key === 'Escape') {
      event.preventDefault(); // closes the picker only: the chat stays open
      onEscape();
    } else if (next !== undefined && at !== -1) {
      event.preventDefault();
      moveTo(options[(next + options.length) % options.length]);
    }
  };
  return h(
    'div',
    { class: 'reaction-picker', id, role: 'toolbar', 'aria-label': label, onkeydown, onfocusout: onFocusOut },
    options,
  );
}
