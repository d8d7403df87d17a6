// A user writing faster than USER_WRITES_PER_SECOND: the server refuses the excess with
// `rate_limited` and the seconds to wait; the client module waits that long and sends again, so
// nothing typed is lost and nothing fails.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { createDirectChat, registerUser } from '../lib/rest.mjs';

const env = useStackAndBrowser({ USER_WRITES_PER_SECOND: '1' });

/** The chat-service's count of `error` frames with `rate_limited`, from its metrics. */
async function rateLimitedFrames() {
  const text = await (await fetch(`${env.stack.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('ws_errors_total') && l.includes('code="rate_limited"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('sends beyond the rate limit wait as the server asks, and all arrive once each', async () => {
  const stamp = Date.now().toString(36);
  const kim = await registerUser(env.stack, `kim${stamp}`, 'Kim Quick');
  const lou = await registerUser(env.stack, `lou${stamp}`, 'Lou Reader');
  const chat = await createDirectChat(env.stack, kim, lou.id);
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.stack.url}/web/config.json`);

  // More than the burst of two plus the refills while four attempts (the module's default) of a
  // send that counted its refusals would last.
  const count = 8;
  const result = await page.evaluate(
    async ({ kimToken, louToken, chatId, count }) => {
      const { ConvergeClient } = await import('/web/js/converge-client.js');
      const url = `ws://${location.host}/ws`;
      const connect = (token) => {
        const client = new ConvergeClient({ url, getToken: async () => token });
        const ready = new Promise((resolve) => client.addEventListener('ready', resolve, { once: true }));
        client.start();
        return { client, ready };
      };
      const kim = connect(kimToken);
      const lou = connect(louToken);
      try {
        await Promise.all([kim.ready, lou.ready]);
        const received = [];
        const allReceived = new Promise((resolve) =>
          lou.client.addEventListener('message', (e) => {
            received.push(e.detail.message.content);
            if (received.length === count) resolve();
          }),
        );
        const sends = Array.from({ length: count }, (_, i) =>
          kim.client.sendMessage({ chatId, content: `quick ${i + 1}` }).then(
            (message) => ({ seq: message.seq, content: message.content }),
            (e) => ({ failed: e.code }),
          ),
        );
        const acks = await Promise.all(sends);
        if (acks.some((a) => a.failed)) return { acks, received }; // what arrived will not grow
        await allReceived;
        return { acks, received };
      } finally {
        kim.client.stop();
        lou.client.stop();
      }
    },
    { kimToken: kim.token, louToken: lou.token, chatId: chat.id, count },
  );

  const expected = Array.from({ length: count }, (_, i) => `quick ${i + 1}`);
  assert.deepEqual(result.acks.filter((a) => a.failed), [], 'no send failed');
  assert.deepEqual(result.acks.map((a) => a.seq).sort((a, b) => a - b), expected.map((_, i) => i + 1));
  assert.deepEqual([...result.received].sort(), [...expected].sort(), 'each message arrived once');
  assert.ok((await rateLimitedFrames()) >= count - 2, 'the server refused all but the burst at first');
  await context.close();
});
