// Replies: Bob answers one of Ana's messages with Reply; the composer says what he answers
// (Escape cancels, the text stays), his reply carries `replyTo` and shows a quote of it to both,
// and the quote leads to the message; the quote follows the message when it is edited or deleted;
// a reply to a message far back in a long chat quotes it before that page is loaded, and its quote
// pages back to it; the reply waits for the draft's chat; and it all fits a 375 px screen.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import {
  PHONE, composer, focused, messageAt, openChat, openClient, register, screenshot, send, signIn, startDirectChat, twoInADirectChat,
  uniqueName, whereAmI,
} from '../lib/browser.mjs';
import { createDirectChat, registerUser, sendMessage } from '../lib/rest.mjs';

const env = useStackAndBrowser();
let ana;
let bob;

const replyBar = (page) => page.locator('.reply-bar');
const replyButton = (page, seq) => messageAt(page, seq).getByRole('button', { name: /^Reply to / });
const quote = (page, seq) => messageAt(page, seq).locator('.reply-quote');
/** The seq of the message that has focus (itself, not a control in it), or undefined. */
const focusedSeq = (page) => page.evaluate(() => document.activeElement?.dataset.seq);

/** The stored message `seq` of the page's open chat, over REST with the page's own token. */
async function storedMessage(page, seq) {
  const { chatId, token } = await whereAmI(page);
  const res = await fetch(`${env.stack.url}/chats/${chatId}/messages?after=${seq - 1}&limit=1`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).messages[0];
}

test('Bob replies to one of Ana’s messages: both see the quote, and it leads to the message', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana Quoted', 'Bob Replies');
  await send(ana.page, 'Dinner at 8?');
  await send(ana.page, 'Or is 9 better for you?');
  await openChat(bob.page, 'Ana Quoted');
  await expect(messageAt(bob.page, 2).locator('.text')).toHaveText('Or is 9 better for you?');

  await replyButton(bob.page, 1).click();
  await expect(replyBar(bob.page)).toBeVisible();
  await expect(replyBar(bob.page).locator('.editing-title')).toHaveText('Replying to Ana Quoted');
  await expect(replyBar(bob.page).locator('.editing-original')).toHaveText('Dinner at 8?');
  assert.equal(await focused(bob.page), 'Message Ana Quoted', 'the composer has focus');
  await expect(composer(bob.page)).toHaveAttribute('aria-describedby', 'reply-bar');
  await composer(bob.page).fill('8 works');
  await composer(bob.page).press('Enter');
  await expect(replyBar(bob.page)).toBeHidden();

  for (const page of [ana.page, bob.page]) {
    await expect(messageAt(page, 3).locator('.text')).toHaveText('8 works');
    await expect(quote(page, 3).locator('.reply-quote-text')).toHaveText('Dinner at 8?');
  }
  await expect(quote(bob.page, 3).locator('.reply-quote-name')).toHaveText('Ana Quoted');
  await expect(quote(ana.page, 3).locator('.reply-quote-name')).toHaveText('You');
  await screenshot(ana.page, 'conversation-reply');
  await expect(quote(ana.page, 3)).toHaveAttribute('aria-label', 'Replying to You: Dinner at 8?. Show that message');
  assert.equal((await storedMessage(ana.page, 3)).replyTo, 1, 'stored as a reply to seq 1');
  // The message after it answers nothing: the reply went with the one message.
  await send(bob.page, 'see you');
  await expect(messageAt(ana.page, 4).locator('.text')).toHaveText('see you');
  await expect(quote(ana.page, 4)).toHaveCount(0);
  assert.equal((await storedMessage(ana.page, 4)).replyTo, undefined);

  // The quote leads to the message: focused, and it flashes.
  await quote(ana.page, 3).click();
  await expect.poll(() => focusedSeq(ana.page), (seq) => assert.equal(seq, '1'));
  await expect(messageAt(ana.page, 1)).toHaveAttribute('class', /\bfound\b/);
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
});

test('Escape cancels a reply and keeps the text; the chat stays open', async () => {
  await replyButton(bob.page, 2).click();
  await expect(replyBar(bob.page).locator('.editing-original')).toHaveText('Or is 9 better for you?');
  await composer(bob.page).fill('not a reply after all');
  await composer(bob.page).press('Escape');
  await expect(replyBar(bob.page)).toBeHidden();
  await expect(composer(bob.page)).toHaveValue('not a reply after all');
  await expect(bob.page.getByRole('heading', { level: 2, name: 'Ana Quoted' })).toBeVisible();
  await composer(bob.page).press('Enter');
  await expect(messageAt(ana.page, 5).locator('.text')).toHaveText('not a reply after all');
  await expect(quote(ana.page, 5)).toHaveCount(0);

  // The × does the same.
  await replyButton(bob.page, 2).click();
  await bob.page.getByRole('button', { name: 'Cancel the reply' }).click();
  await expect(replyBar(bob.page)).toBeHidden();
  assert.equal(await focused(bob.page), 'Message Ana Quoted');
});

test('a quote follows the message it quotes: edited, then deleted', async () => {
  await messageAt(ana.page, 1).getByRole('button', { name: /^Edit message/ }).click();
  await composer(ana.page).fill('Dinner at 8:30?');
  await composer(ana.page).press('Enter');
  for (const page of [ana.page, bob.page]) await expect(quote(page, 3).locator('.reply-quote-text')).toHaveText('Dinner at 8:30?');

  await messageAt(ana.page, 1).getByRole('button', { name: /^Delete message/ }).click();
  await ana.page.getByRole('alertdialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
  for (const page of [ana.page, bob.page]) await expect(quote(page, 3).locator('.reply-quote-text')).toHaveText('Message deleted');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
});

test('a reply waits with its chat’s draft while another chat is open', async () => {
  const cy = await openClient(env.browser, env.stack);
  const cyName = uniqueName('c');
  await register(cy.page, { username: cyName, displayName: 'Cy Other' });
  await startDirectChat(bob.page, cyName, 'Cy Other');
  await openChat(bob.page, 'Ana Quoted');
  await replyButton(bob.page, 2).click();
  await composer(bob.page).fill('9 then');
  await openChat(bob.page, 'Cy Other');
  await expect(replyBar(bob.page)).toBeHidden();
  await openChat(bob.page, 'Ana Quoted');
  await expect(replyBar(bob.page).locator('.editing-original')).toHaveText('Or is 9 better for you?');
  await expect(composer(bob.page)).toHaveValue('9 then');
  await composer(bob.page).press('Enter');
  await expect(quote(ana.page, 6).locator('.reply-quote-text')).toHaveText('Or is 9 better for you?');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors, ...cy.page.errors], [], 'no script errors');
  await cy.context.close();
});

test('replies and their quotes fit a 375 px screen', async () => {
  const page = bob.page;
  await page.setViewportSize(PHONE);
  await expect(page.getByRole('heading', { level: 2, name: 'Ana Quoted' })).toBeVisible();
  await send(ana.page, 'A long message to quote, long enough that its quote cannot show it on one line of a phone screen');
  await expect(messageAt(page, 7).locator('.text')).toContainText('A long message');
  await replyButton(page, 7).click();
  await composer(page).fill('ok');
  const { width } = PHONE;
  const inside = async (locator) => {
    for (const box of await locator.evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON()))) {
      assert.ok(box.left >= 0 && box.right <= width, `within the screen: ${JSON.stringify(box)}`);
    }
  };
  await inside(replyBar(page));
  await composer(page).press('Enter');
  await expect(quote(page, 8)).toBeVisible();
  await inside(quote(page, 8));
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'no horizontal scroll');
  await ana.context.close();
  await bob.context.close();
});

test('a reply to a message far back in a long chat quotes it at once, and its quote pages back to it', async () => {
  const stamp = Date.now().toString(36);
  const dee = await registerUser(env.stack, `dee${stamp}`, 'Dee Long');
  const eli = await registerUser(env.stack, `eli${stamp}`, 'Eli Long');
  const chat = await createDirectChat(env.stack, dee, eli.id);
  await sendMessage(env.stack, dee, chat.id, 'the very first plan');
  for (let i = 2; i <= 120; i++) await sendMessage(env.stack, i % 2 ? dee : eli, chat.id, `message ${i}`);
  await sendMessage(env.stack, eli, chat.id, 'about that first plan: yes', { replyTo: 1 });

  const { context, page } = await signIn(env, dee);
  await openChat(page, 'Eli Long');
  await expect(messageAt(page, 121).locator('.text')).toHaveText('about that first plan: yes');
  await expect(messageAt(page, 1)).toHaveCount(0); // not loaded: only the latest page is
  await expect(quote(page, 121).locator('.reply-quote-text')).toHaveText('the very first plan');
  await expect(quote(page, 121).locator('.reply-quote-name')).toHaveText('You');
  await expect(messageAt(page, 1)).toHaveCount(0); // read on its own, not as a page

  await quote(page, 121).click();
  await expect(messageAt(page, 1).locator('.text')).toHaveText('the very first plan');
  await expect.poll(() => focusedSeq(page), (seq) => assert.equal(seq, '1'));
  // The history between was paged in, so nothing is missing when scrolling down from there.
  assert.equal(await page.locator('.log .msg[data-seq]').count(), 121);
  assert.deepEqual(page.errors, [], 'no script errors');
  await context.close();
});
