// The client by keyboard alone, and labelled for screen readers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { focused, openClient, signIn } from '../lib/browser.mjs';
import { createDirectChat, registerUser, sendMessage } from '../lib/rest.mjs';

const env = useStackAndBrowser();

test('sign in, open a chat, send, start a new chat and leave, all by keyboard', async () => {
  const stamp = Date.now().toString(36);
  const kim = await registerUser(env.stack, `kim${stamp}`, 'Kim Keys');
  const lou = await registerUser(env.stack, `lou${stamp}`, 'Lou Board');
  await createDirectChat(env.stack, lou, kim.id);

  const { context, page } = await openClient(env.browser, env.stack);
  // The sign-in form starts focused on its first field.
  await expect(page.getByRole('textbox', { name: 'Username or email' })).toBeVisible();
  assert.equal(await focused(page), 'login');
  await page.keyboard.type(kim.username);
  await page.keyboard.press('Tab');
  await page.keyboard.type('correct horse battery');
  await page.keyboard.press('Enter');
  const newChat = page.getByRole('button', { name: 'New chat' });
  await expect(newChat).toBeVisible();
  // The list fills in when the WebSocket's `ready` arrives, a moment after the screen appears.
  await expect(page.getByRole('button', { name: /^Lou Board/ })).toBeVisible();

  // Tab from "New chat" reaches the chat; Enter opens it with the composer focused.
  await newChat.focus();
  await page.keyboard.press('Tab');
  assert.match(await focused(page), /^Lou Board/);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { level: 2, name: 'Lou Board' })).toBeVisible();
  await expect.poll(() => focused(page), (f) => assert.equal(f, 'Message Lou Board'));
  await page.keyboard.type('typed without a mouse');
  await page.keyboard.press('Enter');
  await expect(page.locator('.log .msg[data-seq] .text')).toHaveText('typed without a mouse');

  // Escape leaves the chat.
  await page.keyboard.press('Escape');
  await expect(page.getByRole('heading', { level: 2, name: 'Lou Board' })).toBeHidden();

  // The new-chat dialog opens with the search focused and closes with Escape.
  await newChat.focus();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('dialog', { name: 'New chat' })).toBeVisible();
  await expect.poll(() => page.evaluate(() => document.activeElement.id), (id) => assert.equal(id, 'user-search'));
  await page.keyboard.press('Escape');
  await expect(page.getByRole('dialog', { name: 'New chat' })).toBeHidden();
  await context.close();
});

test('every control has a name a screen reader can say', async () => {
  const stamp = Date.now().toString(36);
  const mia = await registerUser(env.stack, `mia${stamp}`, 'Mia Label');
  const ned = await registerUser(env.stack, `ned${stamp}`, 'Ned Label');
  const chat = await createDirectChat(env.stack, mia, ned.id);
  const { context, page } = await signIn(env, mia);
  await page.goto(`${env.stack.url}/#chat/${chat.id}`);
  await expect(page.getByRole('heading', { level: 2, name: 'Ned Label' })).toBeVisible();

  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('button, input, textarea, [role="log"], nav, aside, main')]
      .filter((el) => {
        const labelled = el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
        const text = el.tagName === 'BUTTON' && el.textContent.trim();
        return !labelled && !text;
      })
      .map((el) => el.outerHTML.slice(0, 80)),
  );
  assert.deepEqual(unnamed, []);
  await expect(page.getByRole('log', { name: 'Messages' })).toBeVisible();

  // A message from Ned is announced to screen readers (the log itself is not re-read).
  await sendMessage(env.stack, ned, chat.id, 'Are you there?');
  await expect(page.locator('.sr-only[aria-live="polite"]')).toHaveText('Ned Label: Are you there?');
  await context.close();
});
