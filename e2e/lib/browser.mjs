// Debian's Chromium driven by playwright-core (never a downloaded browser), and the steps every
// test takes as a person would: register, open a chat, send.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { expect } from './expect.mjs';
import { repoRoot } from './stack.mjs';

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const args = ['--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'];
if (process.getuid?.() === 0) args.push('--no-sandbox');

export function launch() {
  return chromium.launch({ executablePath, args, headless: true });
}

export const PHONE = { width: 375, height: 740 };
export const DESKTOP = { width: 1280, height: 800 };

/** A fresh browser profile (its own storage: a different person) with one page on the client. */
export async function openClient(browser, stack, { viewport = DESKTOP, init, permissions } = {}) {
  const context = await browser.newContext({ viewport, colorScheme: 'light', permissions });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.dialogs = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.goto(stack.url);
  return { context, page };
}

let counter = 0;
/** A unique username for this run. */
export function uniqueName(base) {
  counter += 1;
  return `${base}${Date.now().toString(36)}${counter}`;
}

/** Registers through the sign-up form and waits for the chat screen. */
export async function register(page, { username, displayName }) {
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Your name').fill(displayName);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Email').fill(`${username}@example.com`);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('button', { name: 'New chat' })).toBeVisible();
}

/**
 * Opens the client in a new browser profile (`openClient`'s options) and signs `user` (with a
 * `username`, registered with the tests' password) in through the form.
 */
export async function signIn({ browser, stack }, user, options) {
  const { context, page } = await openClient(browser, stack, options);
  await page.getByRole('textbox', { name: 'Username or email' }).fill(user.username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: 'New chat' })).toBeVisible();
  return { context, page };
}

/** Starts a direct chat with the person found by `query` and waits for the conversation. */
export async function startDirectChat(page, query, displayName) {
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.getByLabel('Find people').fill(query);
  await page.getByRole('dialog').getByRole('button', { name: new RegExp(displayName) }).click();
  await expect(page.getByRole('heading', { level: 2, name: displayName })).toBeVisible();
}

/**
 * Two people, each in their own browser profile, registered through the UI; the first starts a
 * direct chat with the second. `init` runs in the first one's pages before their scripts.
 */
export async function twoInADirectChat({ browser, stack }, firstName, secondName, { init } = {}) {
  const first = await openClient(browser, stack, { init });
  await register(first.page, { username: uniqueName('a'), displayName: firstName });
  const second = await openClient(browser, stack);
  const username = uniqueName('b');
  await register(second.page, { username, displayName: secondName });
  await startDirectChat(first.page, username, secondName);
  return [first, second];
}

/** Opens a chat from the list by its title. */
export async function openChat(page, title) {
  await page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: new RegExp(`^${title}`) }).click();
  await expect(page.getByRole('heading', { level: 2, name: title })).toBeVisible();
}

/** Types a message and sends it with Enter. */
export async function send(page, text) {
  const box = page.getByRole('textbox', { name: /^Message / });
  await box.fill(text);
  await box.press('Enter');
}

/** The conversation's message texts, in display order. */
export function messageTexts(page) {
  return page.locator('.log .msg .text').allTextContents();
}

/** Saves a screenshot under SCREENSHOT_DIR (docs/screenshots to refresh README's) or e2e/artifacts. */
export async function screenshot(page, name) {
  const dir = process.env.SCREENSHOT_DIR ? join(repoRoot, process.env.SCREENSHOT_DIR) : join(repoRoot, 'e2e', 'artifacts');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), animations: 'disabled' });
}

/** What has focus: its accessible label, else its text or name, trimmed. */
export const focused = (page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    return (el.getAttribute('aria-label') || el.textContent || el.getAttribute('name') || el.tagName).trim();
  });

/** The open chat's id and the signed-in user, from the page's URL and storage. */
export const whereAmI = (page) =>
  page.evaluate(() => {
    const session = JSON.parse(localStorage.getItem('converge.session'));
    return { chatId: location.hash.slice('#chat/'.length), userId: session.user.id, token: session.accessToken };
  });

/** The open conversation's composer. */
export const composer = (page) => page.getByRole('textbox', { name: /^Message / });

/** The open conversation's message with this seq. */
export const messageAt = (page, seq) => page.locator(`.log .msg[data-seq="${seq}"]`);

/**
 * Runs in a page before its scripts (`openClient`'s `init`): records every frame its WebSockets
 * send and receive (as `{out}` or `{in}`); while `__cutNetwork` is set makes new connections fail,
 * so a test can hold the page offline; and while `__dropUpdates` is set loses every
 * `message_updated` on the way in (recorded as `{dropped}`), so a test can see what the page does
 * with an ack alone; and closes the connection right after sending the next frame of type
 * `__cutAfter` (then clears it), so that frame's answer is lost.
 */
export function recordFrames() {
  const Native = window.WebSocket;
  window.__frames = [];
  window.__sockets = [];
  window.__cutNetwork = false;
  window.__dropUpdates = false;
  window.__cutAfter = null;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(window.__cutNetwork ? String(url).replace(/\/ws$/, '/no-websocket-here') : url, protocols);
      window.__sockets.push(this);
    }

    send(data) {
      const frame = JSON.parse(data);
      window.__frames.push({ out: frame });
      super.send(data);
      if (frame.type === window.__cutAfter) {
        window.__cutAfter = null;
        this.close();
      }
    }

    get onmessage() {
      return super.onmessage;
    }

    set onmessage(handler) {
      super.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        const dropped = window.__dropUpdates && frame.type === 'message_updated';
        window.__frames.push(dropped ? { dropped: frame } : { in: frame });
        if (!dropped) handler(event);
      };
    }
  };
}

/**
 * Runs in a page before its scripts (`openClient`'s `init`): records every desktop notification the
 * page shows (`__notifications`: {title, body, tag, closed}, and `__shown`: the Notification
 * objects, to click one). The browser's own stays underneath: permission is still the browser's.
 */
export function recordNotifications() {
  const Native = window.Notification;
  window.__notifications = [];
  window.__shown = [];
  window.Notification = class extends Native {
    constructor(title, options = {}) {
      super(title, options);
      this.record = { title, body: options.body, tag: options.tag, closed: false };
      window.__notifications.push(this.record);
      window.__shown.push(this);
    }

    close() {
      this.record.closed = true;
      super.close();
    }
  };
}

/** The banner a page shows while its connection is down. */
export const offlineBanner = (page) => page.getByRole('status').filter({ hasText: 'You are offline' });

/** Closes the page's connection and keeps new ones failing (`recordFrames`), until `reconnect`. */
export async function cut(page) {
  await page.evaluate(() => {
    window.__cutNetwork = true;
    window.__sockets.at(-1).close();
  });
  await expect(offlineBanner(page)).toBeVisible();
}

/** Lets connections through again; the browser's `online` skips the backoff wait. */
export async function reconnect(page) {
  await page.evaluate(() => {
    window.__cutNetwork = false;
    window.dispatchEvent(new Event('online'));
  });
  await expect(offlineBanner(page)).toBeHidden();
}

/** The frames a page recorded (`recordFrames`) from the `from`th on, and how many so far. */
export const framesSince = (page, from = 0) => page.evaluate((n) => window.__frames.slice(n), from);
export const frameCount = (page) => page.evaluate(() => window.__frames.length);
