// Reactions: Bob reacts to Ana's message from the picker and both see the chip "👍 1", pressed for
// him only; clicking a chip adds or takes back one's own reaction, for both, and the reactor's page
// shows it from the ack alone; the picker is reached and used by keyboard, and Escape closes it
// with focus back on React; a reaction given while Ana is offline reaches her when she reconnects
// (`editsAfter`); a deleted message shows no reactions; a reaction the server refuses says why;
// all of it fits a 375 px screen; and a reaction given offline shows at once and waits for the
// connection, changes of one reaction go out in the order made, only the last of those that have
// not gone out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import {
  PHONE, cut, frameCount, framesSince, focused, messageAt, offlineBanner, openChat, reconnect, recordFrames, screenshot, send,
  twoInADirectChat, whereAmI,
} from '../lib/browser.mjs';
import { addReaction } from '../lib/rest.mjs';

const env = useStackAndBrowser();
let ana;
let bob;

/** A message's reaction chips, or the one for `emoji`. */
const chips = (page, seq) => messageAt(page, seq).locator('.reaction');
const chip = (page, seq, emoji) => messageAt(page, seq).locator(`.reaction[data-emoji="${emoji}"]`);
const picker = (page) => page.getByRole('toolbar', { name: /^React to / });
const reactButton = (page, seq) => messageAt(page, seq).getByRole('button', { name: /^React to / });
const notice = (page) => page.locator('.composer-notice');
const deleteDialog = (page) => page.getByRole('alertdialog', { name: 'Delete this message?' });

/** Reacts to message `seq` as a person does: React, then the emoji's button in the picker. */
async function reactWith(page, seq, name) {
  await reactButton(page, seq).click();
  await picker(page).getByRole('button', { name }).click();
  await expect(picker(page)).toBeHidden();
}

/** A chip as both see it: its text, whether it is pressed, and its accessible name. */
async function expectChip(page, seq, emoji, { text, pressed, name }) {
  const c = chip(page, seq, emoji);
  await expect(c).toHaveText(text);
  await expect(c).toHaveAttribute('aria-pressed', String(pressed));
  await expect(c).toHaveAttribute('aria-label', name);
}

test('Bob reacts from the picker; a chip shows it to both, and clicking a chip toggles one’s own reaction', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana React', 'Bob React', { init: recordFrames });
  await send(ana.page, 'Lunch at noon?');
  await openChat(bob.page, 'Ana React');
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('Lunch at noon?');
  await expect(chips(bob.page, 1)).toHaveCount(0);
  const { chatId, userId: anaId } = await whereAmI(ana.page);
  const { userId: bobId } = await whereAmI(bob.page);

  // Bob may react to Ana's message (though not change it): React opens the picker.
  await expect(messageAt(bob.page, 1).getByRole('button', { name: /^(Edit|Delete)/ })).toHaveCount(0);
  await reactButton(bob.page, 1).click();
  await expect(picker(bob.page)).toBeVisible();
  await expect(reactButton(bob.page, 1)).toHaveAttribute('aria-expanded', 'true');
  assert.deepEqual(
    await picker(bob.page).getByRole('button').evaluateAll((options) => options.map((o) => o.textContent)),
    ['👍', '❤️', '😂', '😮', '😢', '🎉', '🙏', '👀'],
  );
  await picker(bob.page).getByRole('button', { name: 'Thumbs up' }).click();
  await expect(picker(bob.page)).toBeHidden();
  await expect(reactButton(bob.page, 1)).toHaveAttribute('aria-expanded', 'false');

  await expectChip(bob.page, 1, '👍', { text: '👍 1', pressed: true, name: '👍: 1 reaction, yours' });
  await expectChip(ana.page, 1, '👍', { text: '👍 1', pressed: false, name: '👍: 1 reaction' });
  await expect(chip(ana.page, 1, '👍')).toHaveAttribute('title', 'Bob React reacted with 👍');
  for (const page of [ana.page, bob.page]) {
    await expect(chips(page, 1)).toHaveCount(1);
    await expect(messageAt(page, 1).locator('.edited')).toHaveCount(0); // a reaction is not an edit
  }

  // Ana adds hers by clicking the chip. Her page shows it from the ack alone: the echo is lost.
  await ana.page.evaluate(() => (window.__dropUpdates = true));
  const before = await frameCount(ana.page);
  await chip(ana.page, 1, '👍').click();
  await expectChip(ana.page, 1, '👍', { text: '👍 2', pressed: true, name: '👍: 2 reactions, including yours' });
  await expectChip(bob.page, 1, '👍', { text: '👍 2', pressed: true, name: '👍: 2 reactions, including yours' });
  await expect(chip(ana.page, 1, '👍')).toHaveAttribute('title', 'Bob React and you reacted with 👍');
  await expect(chip(bob.page, 1, '👍')).toHaveAttribute('title', 'You and Ana React reacted with 👍');
  await screenshot(bob.page, 'conversation-reactions');
  const frames = await expect.poll(
    () => framesSince(ana.page, before),
    (f) => assert.ok(f.some((x) => x.dropped), 'the echo came, and was dropped'),
  );
  await ana.page.evaluate(() => (window.__dropUpdates = false));
  const sent = frames.filter((f) => f.out?.type === 'add_reaction').map((f) => f.out);
  assert.equal(sent.length, 1);
  assert.deepEqual({ chatId: sent[0].chatId, seq: sent[0].seq, emoji: sent[0].emoji }, { chatId, seq: 1, emoji: '👍' });
  const ack = frames.find((f) => f.in?.type === 'ack' && f.in.req === sent[0].req)?.in;
  assert.deepEqual(ack?.message.reactions, [{ emoji: '👍', userIds: [bobId, anaId] }]);
  assert.equal(ack.message.editSeq, 2);
  assert.equal(ack.message.editedAt, undefined);

  // Bob takes his back with his chip: one left, Ana's.
  const mark = await frameCount(ana.page);
  await chip(bob.page, 1, '👍').click();
  await expectChip(bob.page, 1, '👍', { text: '👍 1', pressed: false, name: '👍: 1 reaction' });
  await expectChip(ana.page, 1, '👍', { text: '👍 1', pressed: true, name: '👍: 1 reaction, yours' });
  const update = (await framesSince(ana.page, mark)).find((f) => f.in?.type === 'message_updated')?.in;
  assert.deepEqual(update?.message.reactions, [{ emoji: '👍', userIds: [anaId] }]);
});

test('the picker by keyboard: Tab reaches React, arrows move, Enter picks, Escape closes and focus returns', async () => {
  const page = bob.page;
  // The mouse is out of the way: pointing at the message would show its actions anyway.
  await page.mouse.move(0, 0);
  await page.locator('.log').focus();
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), 'Reply to message from Ana React: Lunch at noon?');
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), 'React to message from Ana React: Lunch at noon?');
  const shown = () => page.evaluate(() => getComputedStyle(document.activeElement.closest('.msg-actions')).opacity);
  assert.equal(await shown(), '1', 'the actions show when reached by keyboard');

  // Enter opens it on its first emoji; the arrows go along and around, Home and End to the ends.
  await page.keyboard.press('Enter');
  await expect(picker(page)).toBeVisible();
  await expect.poll(() => focused(page), (f) => assert.equal(f, 'Thumbs up'));
  await page.keyboard.press('ArrowLeft');
  assert.equal(await focused(page), 'Eyes');
  await page.keyboard.press('Home');
  assert.equal(await focused(page), 'Thumbs up');
  await page.keyboard.press('ArrowRight');
  assert.equal(await focused(page), 'Red heart');
  // Escape closes the picker only: the chat stays open, and focus is back on React.
  await page.keyboard.press('Escape');
  await expect(picker(page)).toBeHidden();
  assert.equal(await focused(page), 'React to message from Ana React: Lunch at noon?');
  await expect(page.getByRole('heading', { level: 2, name: 'Ana React' })).toBeVisible();
  await expect(chips(page, 1)).toHaveCount(1);

  // The picker is one Tab stop, and it remembers nothing of the last time: Enter, →, Enter picks ❤️.
  await page.keyboard.press('Enter');
  await expect.poll(() => focused(page), (f) => assert.equal(f, 'Thumbs up'));
  await page.keyboard.press('ArrowRight');
  assert.equal(await focused(page), 'Red heart');
  await page.keyboard.press('Enter');
  await expect(picker(page)).toBeHidden();
  await expectChip(page, 1, '❤️', { text: '❤️ 1', pressed: true, name: '❤️: 1 reaction, yours' });
  await expectChip(ana.page, 1, '❤️', { text: '❤️ 1', pressed: false, name: '❤️: 1 reaction' });
  assert.deepEqual(await chips(ana.page, 1).allTextContents(), ['👍 1', '❤️ 1'], 'in the order first given');
  await expect.poll(() => focused(page), (f) => assert.equal(f, 'React to message from Ana React: Lunch at noon?'));

  // The chips are buttons in the tab order too: Tab from React, then Space takes ❤️ back. The
  // last ❤️ gone, focus stays with the message, on React.
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), '👍: 1 reaction');
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), '❤️: 1 reaction, yours');
  await page.keyboard.press('Space');
  for (const p of [page, ana.page]) await expect(chip(p, 1, '❤️')).toHaveCount(0);
  await expect.poll(() => focused(page), (f) => assert.equal(f, 'React to message from Ana React: Lunch at noon?'));
});

test('a reaction given while Ana is offline shows when she reconnects, through editsAfter', async () => {
  const { chatId } = await whereAmI(ana.page);
  // The reaction goes to a message that is not the chat's last: only the resumed changes can bring it.
  await send(ana.page, 'See you there');
  await expect(messageAt(bob.page, 2).locator('.text')).toHaveText('See you there');

  await cut(ana.page);
  const mark = await frameCount(ana.page);
  await reactWith(bob.page, 1, 'Party popper');
  await expectChip(bob.page, 1, '🎉', { text: '🎉 1', pressed: true, name: '🎉: 1 reaction, yours' });
  assert.equal(await chip(ana.page, 1, '🎉').count(), 0, 'Ana is away');

  await reconnect(ana.page);
  await expectChip(ana.page, 1, '🎉', { text: '🎉 1', pressed: false, name: '🎉: 1 reaction' });
  assert.deepEqual(await chips(ana.page, 1).allTextContents(), ['👍 1', '🎉 1']);

  // On the wire: her edit point in the auth frame, the change as message_updated, then `resumed`.
  const resumedIn = (frames) => frames.find((f) => f.in?.type === 'resumed')?.in;
  const frames = await expect.poll(() => framesSince(ana.page, mark), (f) => assert.ok(resumedIn(f), 'resumed'));
  const auth = frames.find((f) => f.out?.type === 'auth').out;
  const updates = frames.filter((f) => f.in?.type === 'message_updated').map((f) => f.in.message);
  assert.equal(updates.length, 1);
  assert.equal(updates[0].seq, 1);
  assert.ok(auth.editsAfter[chatId] < updates[0].editSeq, 'she asked for the changes after one she had');
  assert.deepEqual(updates[0].reactions.map((r) => r.emoji), ['👍', '🎉']);
  assert.equal(resumedIn(frames).edits[chatId], updates[0].editSeq);
});

test('a deleted message shows no reactions, and a picker open on it closes', async () => {
  await send(ana.page, 'Wrong chat, sorry');
  await expect(messageAt(bob.page, 3).locator('.text')).toHaveText('Wrong chat, sorry');
  await reactWith(bob.page, 3, 'Face with tears of joy');
  await expect(chip(ana.page, 3, '😂')).toHaveText('😂 1');

  // Bob has the picker open on it when Ana deletes it.
  await reactButton(bob.page, 3).click();
  await expect(picker(bob.page)).toBeVisible();
  await messageAt(ana.page, 3).getByRole('button', { name: /^Delete message/ }).click();
  await deleteDialog(ana.page).getByRole('button', { name: 'Delete' }).click();
  await expect(deleteDialog(ana.page)).toBeHidden();

  for (const page of [ana.page, bob.page]) {
    await expect(messageAt(page, 3).locator('.tombstone')).toHaveText('Message deleted');
    await expect(chips(page, 3)).toHaveCount(0);
    await expect(messageAt(page, 3).getByRole('button')).toHaveCount(0);
  }
  await expect(picker(bob.page)).toBeHidden();
  assert.equal(await focused(bob.page), 'Messages', 'focus stays in the conversation');
  await expect(chips(bob.page, 1)).toHaveCount(2); // the others keep theirs
});

test('a reaction the server refuses says why: a message carries at most 20 different emoji', async () => {
  const me = await whereAmI(ana.page);
  await send(ana.page, 'Rate this');
  await expect(messageAt(bob.page, 4).locator('.text')).toHaveText('Rate this');
  // Twenty different emoji, none of them the picker's, over REST.
  const twenty = [...'😀😃😄😁😆😅🤣😊😇🙂🙃😉😌😍🥰😘😗😙😚😋'];
  for (const emoji of twenty) await addReaction(env.stack, me, me.chatId, 4, emoji);
  for (const page of [ana.page, bob.page]) await expect(chips(page, 4)).toHaveCount(20);

  const before = await frameCount(ana.page);
  await reactWith(ana.page, 4, 'Thumbs up');
  const frames = await expect.poll(
    () => framesSince(ana.page, before),
    (f) => assert.ok(f.some((x) => x.in?.type === 'error'), 'refused'),
  );
  const sent = frames.find((f) => f.out?.type === 'add_reaction')?.out;
  const refusal = frames.find((f) => f.in?.type === 'error' && f.in.req === sent?.req)?.in;
  assert.equal(refusal?.code, 'validation_failed');
  assert.ok(refusal.fields?.emoji, 'the server names the refused field');
  await expect(notice(ana.page)).toHaveText(`Your reaction was not added: ${refusal.fields.emoji}.`);
  assert.match(refusal.fields.emoji, /20/);
  for (const page of [ana.page, bob.page]) {
    await expect(chips(page, 4)).toHaveCount(20);
    await expect(chip(page, 4, '👍')).toHaveCount(0);
  }

  // Joining one already there is not a new emoji: Bob may.
  await chip(bob.page, 4, '😀').click();
  await expect(chip(ana.page, 4, '😀')).toHaveText('😀 2');
  // Ana takes one of hers back (the notice goes), and then there is room for 👍.
  await chip(ana.page, 4, '😃').click();
  for (const page of [ana.page, bob.page]) await expect(chips(page, 4)).toHaveCount(19);
  await expect(notice(ana.page)).toHaveText('');
  await reactWith(ana.page, 4, 'Thumbs up');
  await expectChip(bob.page, 4, '👍', { text: '👍 1', pressed: false, name: '👍: 1 reaction' });
});

test('reactions and the picker fit a 375 px screen', async () => {
  const page = bob.page;
  await page.setViewportSize(PHONE);
  await expect(page.getByRole('heading', { level: 2, name: 'Ana React' })).toBeVisible();
  const { width } = PHONE;
  const inside = async (locator) => {
    for (const box of await locator.evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON()))) {
      assert.ok(box.left >= 0 && box.right <= width, `within the screen: ${JSON.stringify(box)}`);
    }
  };
  await inside(chips(page, 4));
  // On Ana's message (left) and on his own (right), the picker opens whole on the screen.
  await send(page, 'ok');
  await expect(messageAt(page, 5).locator('.text')).toHaveText('ok');
  for (const seq of [4, 5]) {
    await reactButton(page, seq).click();
    await expect(picker(page)).toBeVisible();
    await inside(picker(page));
    await inside(picker(page).getByRole('button'));
    await page.keyboard.press('Escape');
    await expect(picker(page)).toBeHidden();
  }
  await reactWith(page, 5, 'Eyes');
  await expectChip(page, 5, '👀', { text: '👀 1', pressed: true, name: '👀: 1 reaction, yours' });
  await inside(chips(page, 5));
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

const OFFLINE_NOTICE = 'Offline: your reaction will be sent when the connection is back.';

/** The reaction frames a page sent since `mark`: [type, emoji, req]. */
async function reactionsSent(page, mark) {
  return (await framesSince(page, mark))
    .filter((f) => f.out?.type === 'add_reaction' || f.out?.type === 'remove_reaction')
    .map((f) => [f.out.type, f.out.emoji, f.out.req]);
}

test('a reaction given offline shows at once and is sent when Ana is back; clicked twice meanwhile, it never goes out', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana Away', 'Bob Here', { init: recordFrames });
  await send(ana.page, 'Pizza tonight?');
  await openChat(bob.page, 'Ana Away');
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('Pizza tonight?');

  await cut(ana.page);
  const mark = await frameCount(ana.page);
  await reactWith(ana.page, 1, 'Thumbs up');
  await expectChip(ana.page, 1, '👍', { text: '👍 1', pressed: true, name: '👍: 1 reaction, yours, your change not sent yet' });
  await expect(chip(ana.page, 1, '👍')).toHaveAttribute('title', 'You reacted with 👍 (your change is not sent yet)');
  await expect(notice(ana.page)).toHaveText(OFFLINE_NOTICE);
  // A second one, taken back again before the connection is back.
  await reactWith(ana.page, 1, 'Red heart');
  await expectChip(ana.page, 1, '❤️', { text: '❤️ 1', pressed: true, name: '❤️: 1 reaction, yours, your change not sent yet' });
  await chip(ana.page, 1, '❤️').click();
  await expect(chip(ana.page, 1, '❤️')).toHaveCount(0);
  assert.deepEqual(await reactionsSent(ana.page, mark), [], 'nothing goes out offline');
  await expect(messageAt(bob.page, 1).locator('.reaction')).toHaveCount(0);

  await reconnect(ana.page);
  await expectChip(ana.page, 1, '👍', { text: '👍 1', pressed: true, name: '👍: 1 reaction, yours' });
  await expectChip(bob.page, 1, '👍', { text: '👍 1', pressed: false, name: '👍: 1 reaction' });
  await expect(notice(ana.page)).toHaveText('');
  // 👍 went out once; of ❤️ only the last click, the take-back (which finds nothing to take).
  const sent = await expect.poll(
    () => reactionsSent(ana.page, mark),
    (s) => assert.equal(s.length, 2, JSON.stringify(s)),
  );
  assert.deepEqual(sent.map(([type, emoji]) => [type, emoji]).sort(), [['add_reaction', '👍'], ['remove_reaction', '❤️']]);
  for (const page of [ana.page, bob.page]) assert.deepEqual(await chips(page, 1).allTextContents(), ['👍 1']);
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
});

test('a reaction whose answer was lost is sent again, and taking it back meanwhile goes out after that answer', async () => {
  await send(ana.page, 'Movie after?');
  await expect(messageAt(bob.page, 2).locator('.text')).toHaveText('Movie after?');
  const mark = await frameCount(ana.page);

  // The connection drops as soon as the reaction is out, and stays down: its ack cannot arrive.
  await ana.page.evaluate(() => {
    window.__cutAfter = 'add_reaction';
    window.__cutNetwork = true;
  });
  await reactWith(ana.page, 2, 'Party popper');
  await expect(offlineBanner(ana.page)).toBeVisible();
  await expectChip(ana.page, 2, '🎉', { text: '🎉 1', pressed: true, name: '🎉: 1 reaction, yours, your change not sent yet' });
  // The server had it: Bob sees it.
  await expectChip(bob.page, 2, '🎉', { text: '🎉 1', pressed: false, name: '🎉: 1 reaction' });
  // Ana changes her mind before she is back.
  await chip(ana.page, 2, '🎉').click();
  await expect(chip(ana.page, 2, '🎉')).toHaveCount(0);

  await reconnect(ana.page);
  const sent = await expect.poll(
    () => reactionsSent(ana.page, mark),
    (s) => assert.equal(s.length, 3, JSON.stringify(s)),
  );
  // The add again (it may not have been applied), and the take-back only once that is answered:
  // sent together, the retry could be applied last and give the reaction back.
  assert.deepEqual(sent.map(([type, emoji]) => [type, emoji]), [['add_reaction', '🎉'], ['add_reaction', '🎉'], ['remove_reaction', '🎉']]);
  const frames = await framesSince(ana.page, mark);
  const retryAnswered = frames.findIndex((f) => f.in?.type === 'ack' && f.in.req === sent[1][2]);
  const takeBackSent = frames.findIndex((f) => f.out?.req === sent[2][2]);
  assert.ok(retryAnswered !== -1 && retryAnswered < takeBackSent, `the retry's ack (${retryAnswered}) before the take-back (${takeBackSent})`);
  const takeBackAck = await expect.poll(
    async () => (await framesSince(ana.page, mark)).find((f) => f.in?.type === 'ack' && f.in.req === sent[2][2])?.in,
    (ack) => assert.ok(ack, 'the take-back is answered'),
  );
  assert.equal(takeBackAck.message.reactions, undefined, 'no reaction is left');
  for (const page of [ana.page, bob.page]) await expect(chips(page, 2)).toHaveCount(0);
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});
