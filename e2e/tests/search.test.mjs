// Message search: the field above the chat list finds messages of one's own chats by their text,
// newest first, the match marked, in the list's place; a result opens its chat at the message,
// paging back through a long history to it; a query too short is not sent, and one the server
// refuses says why; "More results" pages back with `before`; Escape brings the chat list back.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { PHONE, openClient, signIn } from '../lib/browser.mjs';
import { createDirectChat, createGroup, markRead, registerUser, sendMessage } from '../lib/rest.mjs';

const env = useStackAndBrowser();
const stamp = Date.now().toString(36);
let ana;
let bob;
let cy;
/** Ana's direct chat with Bob. */
let anaBob;
/** Ana's page at the desktop size, shared by the tests that follow the first. */
let anaPage;

const searchBox = (page) => page.getByRole('searchbox', { name: 'Search messages' });
const resultsRegion = (page) => page.getByRole('region', { name: 'Search results' });
const results = (page) => resultsRegion(page).locator('.search-result');
const searchStatus = (page) => resultsRegion(page).getByRole('status');
const chatList = (page) => page.getByRole('navigation', { name: 'Your chats' });

/** Signs `user` in through the form, and waits for their chats to be listed. */
async function signInWithChats(user, { viewport, chats } = {}) {
  const { context, page } = await signIn(env, user, { viewport });
  await expect(chatList(page).getByRole('button')).toHaveCount(chats);
  return { context, page };
}

/** Records the page's calls to the search API, as URLs. */
function recordSearches(page) {
  const urls = [];
  page.on('request', (r) => {
    if (r.url().includes('/messages/search')) urls.push(new URL(r.url()));
  });
  return urls;
}

test('Ana finds a word in her two chats, newest first with the match marked, and not in a chat she is not in', async () => {
  ana = await registerUser(env.stack, `ana${stamp}`, 'Ana Search');
  bob = await registerUser(env.stack, `bob${stamp}`, 'Bob Search');
  cy = await registerUser(env.stack, `cy${stamp}`, 'Cy Search');
  anaBob = await createDirectChat(env.stack, ana, bob.id);
  const group = await createGroup(env.stack, ana, 'Trip planning', [bob.id, cy.id]);
  const bobCy = await createDirectChat(env.stack, bob, cy.id);
  await sendMessage(env.stack, bob, anaBob.id, 'Did you see the Pelican?');
  await sendMessage(env.stack, ana, anaBob.id, 'No, where?');
  await sendMessage(env.stack, cy, group.id, 'pelicans everywhere today');
  await sendMessage(env.stack, bob, bobCy.id, 'the pelican is a secret from Ana');

  ({ page: anaPage } = await signInWithChats(ana, { chats: 2 }));
  const searches = recordSearches(anaPage);
  await searchBox(anaPage).fill('pelican');

  await expect(searchStatus(anaPage)).toHaveText('2 messages found.');
  await expect(results(anaPage)).toHaveCount(2);
  await expect(chatList(anaPage)).toBeHidden();
  const found = results(anaPage);
  assert.deepEqual(await found.locator('.result-chat').allTextContents(), ['Trip planning', 'Bob Search'], 'newest first');
  assert.deepEqual(await found.locator('.result-text').allTextContents(), ['Cy Search: pelicans everywhere today', 'Bob Search: Did you see the Pelican?']);
  assert.deepEqual(await found.locator('mark').allTextContents(), ['pelican', 'Pelican'], 'the match is marked, as written');
  assert.deepEqual(
    await found.evaluateAll((els) => els.map((e) => e.dataset.chatId)),
    [group.id, anaBob.id],
    'only her own chats',
  );
  assert.deepEqual(searches.map((u) => u.searchParams.get('q')), ['pelican'], 'one request, once typing paused');
});

test('Escape, or clearing the field, brings the chat list back', async () => {
  const page = anaPage;
  await searchBox(page).focus();
  await page.keyboard.press('Escape');
  await expect(chatList(page)).toBeVisible();
  await expect(resultsRegion(page)).toBeHidden();
  await expect(searchBox(page)).toHaveValue('');
  await expect(chatList(page).getByRole('button')).toHaveCount(2);

  // From a result too, by keyboard.
  await searchBox(page).fill('pelican');
  await expect(results(page)).toHaveCount(2);
  await page.keyboard.press('Tab'); // New chat, below the field
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('search-result')), true, 'Tab reaches the results');
  await page.keyboard.press('Escape');
  await expect(chatList(page)).toBeVisible();
  await expect(searchBox(page)).toHaveValue('');

  // Emptied by hand.
  await searchBox(page).fill('pelican');
  await expect(results(page)).toHaveCount(2);
  await searchBox(page).fill('');
  await expect(chatList(page)).toBeVisible();
  await expect(resultsRegion(page)).toBeHidden();
});

test('"More results" brings the older page, asked with the last message shown as `before`', async () => {
  const page = anaPage;
  const sent = [];
  for (let i = 1; i <= 23; i++) sent.push(await sendMessage(env.stack, ana, anaBob.id, `heron ${i}`));
  const searches = recordSearches(page);
  await searchBox(page).fill('heron');
  await expect(searchStatus(page)).toHaveText('20 messages found; there are more.');
  const texts = () => results(page).locator('.result-text').allTextContents();
  assert.deepEqual(await texts(), Array.from({ length: 20 }, (_, i) => `You: heron ${23 - i}`));

  const more = resultsRegion(page).getByRole('button', { name: 'More results' });
  await more.click();
  await expect(searchStatus(page)).toHaveText('23 messages found.');
  assert.deepEqual(await texts(), Array.from({ length: 23 }, (_, i) => `You: heron ${23 - i}`), 'each once, still newest first');
  await expect(more).toBeHidden();
  // Focus goes to the first result the page brought.
  assert.equal(await page.evaluate(() => document.activeElement.textContent.endsWith('heron 3')), true);

  assert.equal(searches.length, 2);
  assert.equal(searches[0].searchParams.get('before'), null);
  assert.equal(searches[1].searchParams.get('q'), 'heron');
  assert.equal(searches[1].searchParams.get('before'), sent[3].id, 'the id of "heron 4", the last shown');
  await page.keyboard.press('Escape');
  await expect(chatList(page)).toBeVisible();
});

test('a one-character query is not sent, and a query the server refuses says why', async () => {
  // A clock of the test's own: the search's pause can pass without waiting for it.
  const { context, page } = await openClient(env.browser, env.stack);
  await page.clock.install();
  await page.reload();
  await page.getByRole('textbox', { name: 'Username or email' }).fill(ana.username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(chatList(page).getByRole('button')).toHaveCount(2);
  const searches = recordSearches(page);

  await searchBox(page).fill('p');
  await expect(searchStatus(page)).toHaveText('Type at least 2 characters to search messages.');
  await page.clock.runFor(5_000);
  await expect(results(page)).toHaveCount(0);
  assert.deepEqual(searches, [], 'nothing was asked for one character');

  // Over the server's 100 characters: it is asked, and its refusal is said.
  const refused = page.waitForResponse((r) => r.url().includes('/messages/search'));
  await searchBox(page).fill('pelican '.repeat(13));
  await page.clock.runFor(1_000);
  assert.equal((await refused).status(), 422);
  await expect(searchStatus(page)).toHaveText('This search cannot be run: the text must be 2 to 100 characters.');
  await expect(results(page)).toHaveCount(0);
  await context.close();
});

test('on a phone, a result deep in a long chat opens it at that message, loaded, in view and highlighted', async () => {
  const dee = await registerUser(env.stack, `dee${stamp}`, 'Dee Long');
  const chat = await createDirectChat(env.stack, dee, ana.id);
  const total = 120;
  for (let i = 1; i <= total; i++) {
    await sendMessage(env.stack, dee, chat.id, i === 3 ? 'the osprey nest is by the lake' : `line ${i}`);
  }
  await markRead(env.stack, ana, chat.id, total); // opening loads only the newest page, then
  const { context, page } = await signInWithChats(ana, { viewport: PHONE, chats: 3 });

  await searchBox(page).fill('osprey');
  await expect(results(page)).toHaveCount(1);
  await expect(results(page).first().locator('mark')).toHaveText('osprey');
  // By keyboard: Tab past New chat to the result, Enter opens it.
  await searchBox(page).focus();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('search-result')), true);
  await page.keyboard.press('Enter');

  await expect(page.getByRole('heading', { level: 2, name: 'Dee Long' })).toBeVisible();
  const target = page.locator('.log .msg[data-seq="3"]');
  await expect(target.locator('.text')).toHaveText('the osprey nest is by the lake');
  await expect(target).toHaveAttribute('class', /\bfound\b/);
  await expect.poll(
    () => page.evaluate(() => document.activeElement?.dataset.seq),
    (seq) => assert.equal(seq, '3'),
  );
  // In view, inside the log.
  const inView = await target.evaluate((el) => {
    const box = el.getBoundingClientRect();
    const log = el.closest('.log').getBoundingClientRect();
    return box.top >= log.top && box.bottom <= log.bottom;
  });
  assert.ok(inView, 'the message is scrolled into view');
  // Loaded by the history's own paging: contiguous to the newest, each message once.
  const seqs = await page.locator('.log .msg').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  assert.ok(seqs[0] <= 3, `loaded from seq ${seqs[0]}`);
  assert.deepEqual(seqs, Array.from({ length: total - seqs[0] + 1 }, (_, i) => seqs[0] + i));

  // The highlight is brief: its class goes when its animation has played.
  await expect.poll(() => target.getAttribute('class'), (c) => assert.doesNotMatch(c, /\bfound\b/));
  // Back on the list side, the search is still there to pick another.
  await page.getByRole('button', { name: 'Back to chats' }).click();
  await expect(results(page)).toHaveCount(1);
  assert.deepEqual(page.errors, []);
  await context.close();
});
