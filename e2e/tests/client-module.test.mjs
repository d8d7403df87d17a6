// web/js/converge-client.js on its own, as another app would use it: no UI, just the module.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { createDirectChat, registerUser } from '../lib/rest.mjs';
import { expect } from '../lib/expect.mjs';
import { send, twoInADirectChat } from '../lib/browser.mjs';

const env = useStackAndBrowser();

test('the protocol module alone connects, sends idempotently and delivers to the other side', async () => {
  const stamp = Date.now().toString(36);
  const ivy = await registerUser(env.stack, `ivy${stamp}`, 'Ivy Module');
  const jon = await registerUser(env.stack, `jon${stamp}`, 'Jon Module');
  const chat = await createDirectChat(env.stack, ivy, jon.id);
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.stack.url}/web/config.json`); // any page of the origin: the module is same-origin

  const result = await page.evaluate(
    async ({ ivyToken, jonToken, chatId }) => {
      const { ConvergeClient } = await import('/web/js/converge-client.js');
      const url = `ws://${location.host}/ws`;
      /** Every status a client went through, to say what happened if a step never ends. */
      const history = [];
      const within = (promise, what) =>
        Promise.race([
          promise,
          new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} took over 20 s; statuses: ${history.join(', ')}`)), 20_000)),
        ]);
      const connect = (name, token) => {
        const client = new ConvergeClient({ url, getToken: async () => token });
        client.addEventListener('status', (e) => history.push(`${name} ${e.detail.state}`));
        const ready = new Promise((resolve) => client.addEventListener('ready', (e) => resolve(e.detail), { once: true }));
        client.start();
        return { client, ready };
      };
      const ivy = connect('ivy', ivyToken);
      const jon = connect('jon', jonToken);
      try {
        const [ivyReady] = await within(Promise.all([ivy.ready, jon.ready]), 'ready');
        const received = new Promise((resolve) => jon.client.addEventListener('message', (e) => resolve(e.detail.message), { once: true }));
        const first = await within(ivy.client.sendMessage({ chatId, content: 'from the module', clientMsgId: 'module-1' }), 'the ack');
        const again = await within(ivy.client.sendMessage({ chatId, content: 'ignored: same id', clientMsgId: 'module-1' }), 'the second ack');
        const got = await within(received, "Jon's message");
        // A refused send rejects with the server's code and the fields it names.
        const refused = await within(
          ivy.client.sendMessage({ chatId, content: 'x', clientMsgId: 'module-2', attachmentId: crypto.randomUUID() }).then(
            () => null,
            (e) => ({ code: e.code, fields: e.fields }),
          ),
          'the refusal',
        );
        return { chats: ivyReady.chats.map((c) => c.id), first, again, got, refused };
      } finally {
        ivy.client.stop();
        jon.client.stop();
      }
    },
    { ivyToken: ivy.token, jonToken: jon.token, chatId: chat.id },
  );

  assert.deepEqual(result.chats, [chat.id]);
  assert.equal(result.first.seq, 1);
  assert.equal(result.again.id, result.first.id, 'the same clientMsgId gives back the stored message');
  assert.equal(result.got.content, 'from the module');
  assert.equal(result.refused?.code, 'validation_failed');
  assert.match(result.refused.fields?.attachmentId ?? '', /no image you uploaded/);
  await context.close();
});

test('clientMsgIds are UUIDs even where crypto.randomUUID is missing (plain http)', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.stack.url}/web/config.json`);
  const ids = await page.evaluate(async () => {
    const { uuid } = await import('/web/js/converge-client.js');
    const native = crypto.randomUUID;
    Object.defineProperty(crypto, 'randomUUID', { value: undefined, configurable: true });
    try {
      return [uuid(), uuid()];
    } finally {
      Object.defineProperty(crypto, 'randomUUID', { value: native, configurable: true });
    }
  });
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(ids[0], ids[1]);
  await context.close();
});

test('the message view shows image messages that have only imageUrl, and only from https or chat-service', async () => {
  // Messages with an `imageUrl` and no `image` (tests/images.test.mjs has real uploads): fed to
  // the page's socket as frames. A path is fetched from chat-service with the token; a
  // protocol-relative //host URL is never shown (nor sent the token).
  const trackSockets = () => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(url, protocols) {
        super(url, protocols);
        window.__sockets.push(this);
      }
    };
  };
  const [ana, bob] = await twoInADirectChat(env, 'Ana Picture', 'Bob Picture', { init: trackSockets });
  await send(ana.page, 'a photo follows');
  await expect(ana.page.locator('.log .msg[data-seq="1"]')).toBeVisible();

  await ana.page.evaluate(() => {
    const chatId = location.hash.slice('#chat/'.length);
    const me = JSON.parse(localStorage.getItem('converge.session')).user.id;
    const frame = (seq, extra) => ({
      type: 'new_message',
      message: { id: crypto.randomUUID(), chatId, seq, senderId: me, clientMsgId: `img-${seq}`, createdAt: new Date().toISOString(), content: '', ...extra },
    });
    const ws = window.__sockets.at(-1);
    ws.onmessage({ data: JSON.stringify(frame(2, { imageUrl: '/web/img/icon.svg' })) });
    ws.onmessage({ data: JSON.stringify(frame(3, { imageUrl: '//elsewhere.example/x.png', content: 'no picture from there' })) });
  });

  const picture = ana.page.locator('.log .msg[data-seq="2"] .msg-image img');
  await expect(picture).toHaveAttribute('alt', 'Your image');
  await expect.poll(() => picture.evaluate((img) => img.complete && img.naturalWidth > 0), (loaded) => assert.ok(loaded));
  assert.match(await picture.getAttribute('src'), /^blob:/, 'fetched with the token, shown from memory');
  await expect(ana.page.locator('.log .msg[data-seq="3"] .text')).toHaveText('no picture from there');
  assert.equal(await ana.page.locator('.log .msg[data-seq="3"] img').count(), 0);
  await ana.context.close();
  await bob.context.close();
});

test('the store redraws an open chat whose last message comes newer in a ready than its history held', async () => {
  // On a reconnect, `ready` carries each chat's last message as it is now; a change made while
  // the client was away arrives after it, no newer than that copy, and changes nothing — so the
  // copy from `ready` must itself tell the open conversation to redraw.
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.stack.url}/web/config.json`);
  const result = await page.evaluate(async () => {
    const { Store } = await import('/web/js/store.js');
    const me = { id: crypto.randomUUID(), displayName: 'Ana' };
    const chatId = crypto.randomUUID();
    const message = (content, editSeq) => ({
      id: 'm1', chatId, seq: 1, senderId: me.id, clientMsgId: 'c1', content, createdAt: '2026-12-07T20:00:00Z', editSeq,
    });
    const chat = (lastMessage) => ({
      id: chatId, kind: 'direct', createdAt: '2026-12-07T20:00:00Z', lastSeq: 1, lastMessage, unreadCount: 0,
      lastEditSeq: lastMessage.editSeq ?? 0, participants: [{ userId: me.id, displayName: 'Ana', role: 'member', lastDeliveredSeq: 1, lastReadSeq: 1 }],
    });
    const store = new Store();
    store.setChats(me, [chat(message('plan A'))]);
    store.addPage(chatId, { messages: [message('plan A')], hasMore: false }, { older: false });
    const told = [];
    store.addEventListener('change', (e) => told.push(e.detail.chatId ?? null));
    store.setChats(me, [chat(message('plan B', 1))]);
    const shown = store.history(chatId).bySeq.get(1).content;
    // The resumed change itself, after `ready`.
    const before = told.length;
    store.updateMessage(message('plan B', 1));
    return { toldChat: told.includes(chatId), shown, toldByRepeat: told.length - before };
  });
  assert.deepEqual(result, { toldChat: true, shown: 'plan B', toldByRepeat: 0 });
  await context.close();
});

test('web addresses in a message become links: http(s) and www. only, the text as written, sentence punctuation left out', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.stack.url}/web/config.json`);
  const cases = [
    'see https://example.com/a?b=1&c=2.',
    '(docs: https://en.wikipedia.org/wiki/Rust_(programming_language))',
    'www.rust-lang.org! and http://localhost:3002/#chat/1, too',
    'javascript:alert(1) data:text/html,x ftp://files.example.com mailto:a@b.c',
    'no scheme: example.com, half: https:// and https://[oops',
  ];
  const parts = await page.evaluate(async (texts) => {
    const { withLinks } = await import('/web/js/ui/links.js');
    return texts.map((text) =>
      withLinks(text).map((p) => (typeof p === 'string' ? p : { a: p.textContent, href: p.getAttribute('href'), target: p.target, rel: p.rel })),
    );
  }, cases);
  const link = (a, href) => ({ a, href, target: '_blank', rel: 'noopener noreferrer nofollow' });
  assert.deepEqual(parts, [
    ['see ', link('https://example.com/a?b=1&c=2', 'https://example.com/a?b=1&c=2'), '.'],
    ['(docs: ', link('https://en.wikipedia.org/wiki/Rust_(programming_language)', 'https://en.wikipedia.org/wiki/Rust_(programming_language)'), ')'],
    [link('www.rust-lang.org', 'https://www.rust-lang.org/'), '! and ', link('http://localhost:3002/#chat/1', 'http://localhost:3002/#chat/1'), ', too'],
    ['javascript:alert(1) data:text/html,x ftp://files.example.com mailto:a@b.c'],
    ['no scheme: example.com, half: https:// and https://[oops'],
  ]);
  await context.close();
});
