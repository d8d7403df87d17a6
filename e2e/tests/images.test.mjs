// Image messages: Ana attaches a picture with a caption; it shows at once on her side while it
// uploads, Bob sees it (fetched with his token), opens it full size, and still has it after a
// reload; a file that is no image is refused by the server, said so next to it, and never reaches
// Bob; a send that fails after its upload is retried without uploading again; the composer turns
// away what cannot be sent before anything is uploaded.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateSync } from 'node:zlib';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { PHONE, messageTexts, openChat, screenshot, send, twoInADirectChat } from '../lib/browser.mjs';

const env = useStackAndBrowser();
let ana;
let bob;

// --- a PNG made here: no binary fixtures -----------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A `width`×`height` 8-bit RGB PNG: a sky-to-sunset gradient, so a screenshot shows something. */
function png(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // RGB; compression, filter and interlace stay 0
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3); // each row starts with filter type 0
    for (let x = 0; x < width; x++) {
      const t = y / Math.max(1, height - 1);
      row.set([Math.round(60 + 195 * t), Math.round(120 + 60 * t - (40 * x) / width), Math.round(220 - 160 * t)], 1 + x * 3);
    }
    rows.push(row);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(Buffer.concat(rows))), pngChunk('IEND', Buffer.alloc(0))]);
}

// --- helpers -------------------------------------------------------------------------------------

/**
 * Holds the page's requests to `pattern` until `release()`: the test looks at the state in
 * between (an upload under way, a picture not yet arrived) without racing it.
 */
async function holdRequests(page, pattern) {
  let open;
  const gate = new Promise((resolve) => (open = resolve));
  let arrived;
  const first = new Promise((resolve) => (arrived = resolve));
  const handler = async (route) => {
    arrived();
    await gate;
    await route.continue();
  };
  await page.route(pattern, handler);
  return {
    first,
    release: () => open(),
    stop: () => page.unroute(pattern, handler),
  };
}

/** [naturalWidth, naturalHeight] of an <img> once it has loaded, [0, 0] before. */
const loadedSize = (img) => img.evaluate((el) => (el.complete ? [el.naturalWidth, el.naturalHeight] : [0, 0]));

/** Waits until an <img> has loaded its picture and answers its natural size. */
const loaded = (img) => expect.poll(() => loadedSize(img), ([w]) => assert.ok(w > 0, 'the image has loaded'));

/** Attaches a file with the composer's "Attach image" button, as a person picks one. */
async function attach(page, file) {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByRole('button', { name: 'Attach image' }).click()]);
  await chooser.setFiles(file);
}

/** Drops a file made in the page on the conversation; `size` zero bytes, or `bytes` given. */
function drop(page, { name, type, size = 0, bytes }) {
  return page.locator('.log').evaluate(
    (log, f) => {
      const data = new DataTransfer();
      data.items.add(new File([f.bytes ? new Uint8Array(f.bytes) : new Uint8Array(f.size)], f.name, { type: f.type }));
      for (const kind of ['dragenter', 'dragover', 'drop']) {
        log.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: data }));
      }
    },
    { name, type, size, bytes: bytes && [...bytes] },
  );
}

/**
 * Runs in Ana's pages before their scripts: records every `send_message` frame the client sends,
 * and while `__refuseSends` is set answers them here with `unavailable` (the server's database
 * away) instead of passing them on.
 */
function sendSwitch() {
  const Native = window.WebSocket;
  window.__sent = [];
  window.__refuseSends = false;
  window.WebSocket = class extends Native {
    send(data) {
      const frame = JSON.parse(data);
      if (frame.type === 'send_message') {
        window.__sent.push(frame);
        if (window.__refuseSends) {
          const answer = { type: 'error', req: frame.req, code: 'unavailable', message: 'the database cannot be reached' };
          queueMicrotask(() => this.onmessage({ data: JSON.stringify(answer) }));
          return;
        }
      }
      super.send(data);
    }
  };
}

const sunset = { name: 'sunset.png', mimeType: 'image/png', buffer: png(480, 320) };
const caption = 'Sunset at the lake';

/** The server's thumbnail of a 480×320 image fits 320×320: 320 wide, its height rounded. */
function isSunsetThumbnail([width, height]) {
  assert.equal(width, 320, 'the thumbnail is 320 wide');
  assert.ok(Math.abs(height - (320 * 320) / 480) < 1, `the thumbnail keeps the shape: ${width}×${height}`);
}

/** Whether a box on screen has the shape of a `width`×`height` image. */
function hasShape(box, width, height) {
  assert.ok(Math.abs(box.width / box.height - width / height) < 0.03, `a box of ${box.width}×${box.height} for ${width}×${height}`);
}

test('Ana attaches an image with a caption: it shows at once while it uploads, then Bob sees it', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana Lima', 'Bob Stone', { init: sendSwitch });
  await openChat(bob.page, 'Ana Lima');

  await attach(ana.page, sunset);
  await expect(ana.page.locator('.staged .staged-name')).toHaveText('sunset.png');

  // The upload is held: the bubble is on screen from the local file, marked as uploading.
  const upload = await holdRequests(ana.page, '**/attachments');
  await send(ana.page, caption);
  await upload.first;
  const pending = ana.page.locator('.log .msg.pending');
  await expect(pending.locator('.status')).toHaveAttribute('data-state', 'uploading');
  await expect(pending.locator('.status')).toHaveAttribute('aria-label', 'Uploading…');
  assert.deepEqual(await loaded(pending.locator('.msg-image img')), [480, 320], 'the picked file shows before it is uploaded');
  await expect(pending.locator('.text')).toHaveText(caption);
  await expect(ana.page.locator('.staged')).toBeHidden();
  upload.release();

  // Stored: Ana's bubble leaves the sending states, with the picture still shown.
  const mine = ana.page.locator('.log .msg[data-seq]').last();
  await expect(mine.locator('.status')).toHaveAttribute('data-state', /^(sent|delivered|read)$/);
  await expect(ana.page.locator('.log .msg.pending')).toHaveCount(0);
  assert.deepEqual(await loaded(mine.locator('.msg-image img')), [480, 320], 'still the local file: nothing fetched again');
  await upload.stop();

  // Bob: the picture (a blob: URL fetched with his token), its caption as text, a box of its shape.
  const theirs = bob.page.locator('.log .msg.has-image').last();
  const picture = theirs.locator('.msg-image img');
  isSunsetThumbnail(await loaded(picture));
  assert.match(await picture.getAttribute('src'), /^blob:/);
  await expect(picture).toHaveAttribute('alt', 'Image from Ana Lima');
  await expect(theirs.locator('.text')).toHaveText(caption);
  hasShape(await theirs.locator('.msg-image').boundingBox(), 480, 320);
  assert.deepEqual(await messageTexts(bob.page), [caption]);
});

test('a pasted image goes without a caption, and the chat list says "📷 Photo"', async () => {
  const bytes = png(40, 40);
  await ana.page.getByRole('textbox', { name: /^Message / }).evaluate((box, data) => {
    const clipboard = new DataTransfer();
    clipboard.items.add(new File([new Uint8Array(data)], 'image.png', { type: 'image/png' }));
    box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: clipboard, bubbles: true, cancelable: true }));
  }, [...bytes]);
  await expect(ana.page.locator('.staged .staged-name')).toHaveText('image.png');
  await ana.page.getByRole('textbox', { name: /^Message / }).press('Enter');

  const latest = bob.page.locator('.log .msg.has-image').last();
  await expect(bob.page.locator('.log .msg.has-image')).toHaveCount(2);
  assert.deepEqual(await loaded(latest.locator('.msg-image img')), [40, 40]);
  await expect(latest.locator('.text')).toHaveCount(0);
  const item = (page, name) => page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: new RegExp(`^${name}`) });
  await expect(item(bob.page, 'Ana Lima').locator('.chat-preview')).toHaveText('📷 Photo');
  await expect(item(ana.page, 'Bob Stone').locator('.chat-preview')).toHaveText('You: 📷 Photo');
  await screenshot(bob.page, 'conversation-image');
});

test('Bob opens the image full size by click and by keyboard; Escape closes it', async () => {
  const open = bob.page.getByRole('button', { name: 'Open the image from Ana Lima' }).first();
  await open.click();
  const viewer = bob.page.getByRole('dialog', { name: 'Image from Ana Lima' });
  await expect(viewer).toBeVisible();
  assert.deepEqual(await loaded(viewer.locator('img')), [480, 320], 'the original, fetched with the token');
  await expect(viewer.locator('.viewer-caption')).toHaveText(caption);
  await bob.page.keyboard.press('Escape');
  await expect(viewer).toBeHidden();
  // Escape closed the picture only: the conversation stays open, and focus is back on the picture.
  await expect(bob.page.getByRole('heading', { level: 2, name: 'Ana Lima' })).toBeVisible();
  await expect.poll(() => bob.page.evaluate(() => document.activeElement.getAttribute('aria-label')), (label) =>
    assert.equal(label, 'Open the image from Ana Lima'),
  );
  await bob.page.keyboard.press('Enter');
  await expect(viewer).toBeVisible();
  await bob.page.getByRole('button', { name: 'Close' }).click();
  await expect(viewer).toBeHidden();
  await expect(bob.page.locator('dialog')).toHaveCount(0);
});

test('after a reload the images come from history, each box sized before its picture arrives', async () => {
  const thumbnails = await holdRequests(bob.page, '**/attachments/*/thumbnail');
  try {
    await bob.page.reload();
    await expect(bob.page.getByRole('heading', { level: 2, name: 'Ana Lima' })).toBeVisible();
    await thumbnails.first;
    const boxes = bob.page.locator('.log .msg-image');
    await expect(boxes).toHaveCount(2);
    // Nothing has arrived yet, and the boxes already have the pictures' shapes. (Awaited: the log
    // may still be drawn again as the reloaded page catches up, and a box being replaced has none.)
    assert.deepEqual(await loadedSize(boxes.first().locator('img')), [0, 0]);
    const reserved = await expect.poll(
      () => boxes.first().boundingBox(),
      (box) => assert.ok(box?.height > 100, `the box is as tall as the picture will be: ${box?.height}`),
    );
    hasShape(reserved, 480, 320);
    thumbnails.release();
    isSunsetThumbnail(await loaded(boxes.first().locator('img')));
    assert.deepEqual(await boxes.first().boundingBox(), reserved, 'the box did not change when the picture came');
    assert.deepEqual(await loaded(boxes.last().locator('img')), [40, 40]);
    await expect(bob.page.locator('.log .msg.has-image .text')).toHaveText(caption);
  } finally {
    // Held thumbnails would starve the next tests' pictures.
    thumbnails.release();
    await thumbnails.stop();
  }
});

test('a file that is no image is refused by the server, the reason shown next to it, and nothing reaches Bob', async () => {
  await attach(ana.page, { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('these are notes, not a picture\n') });
  await expect(ana.page.locator('.staged .staged-name')).toHaveText('notes.png');
  const answer = ana.page.waitForResponse((res) => res.url().endsWith('/attachments') && res.request().method() === 'POST');
  await ana.page.getByRole('textbox', { name: /^Message / }).press('Enter');
  const refusal = await answer;
  const { error } = await refusal.json();
  // The server reads the format from the bytes, whatever the name and type say.
  assert.equal(refusal.status(), 415);
  assert.equal(error.code, 'unsupported_media_type');

  const failed = ana.page.locator('.log .msg.pending.failed');
  await expect(failed.locator('.status')).toHaveAttribute('data-state', 'failed');
  await expect(failed.getByRole('alert')).toContainText('Not sent: this file is not a PNG, JPEG, GIF or WebP image.');
  // The same bytes cannot do better: no Retry, but it can be removed.
  await expect(failed.getByRole('button', { name: 'Retry' })).toHaveCount(0);

  // Ana writes on: Bob gets that, right after the two pictures, and never the refused file.
  await send(ana.page, 'after the refusal');
  await expect(bob.page.locator('.log .msg .text').last()).toHaveText('after the refusal');
  await expect(bob.page.locator('.log .msg')).toHaveCount(3);
  await expect(bob.page.locator('.log .msg.has-image')).toHaveCount(2);

  await failed.getByRole('button', { name: 'Remove' }).click();
  await expect(ana.page.locator('.log .msg.pending')).toHaveCount(0);
});

test('a send that fails after its upload is retried with the same upload and the same clientMsgId', async () => {
  const uploads = [];
  const countUploads = (res) => res.url().endsWith('/attachments') && res.request().method() === 'POST' && uploads.push(res);
  ana.page.on('response', countUploads);
  await ana.page.evaluate(() => {
    window.__sent.length = 0;
    window.__refuseSends = true;
  });
  await attach(ana.page, { name: 'again.png', mimeType: 'image/png', buffer: png(30, 20) });
  await send(ana.page, 'second try');
  // Uploaded, then every attempt of the send refused: the bubble says so and offers Retry.
  const failed = ana.page.locator('.log .msg.pending.failed');
  await expect(failed.getByRole('alert')).toContainText('Not sent: something went wrong on our side.');
  assert.equal(uploads.length, 1);
  const { id } = await uploads[0].json();

  await ana.page.evaluate(() => {
    window.__refuseSends = false;
  });
  await failed.getByRole('button', { name: 'Retry' }).click();
  await expect(bob.page.locator('.log .msg .text').last()).toHaveText('second try');
  assert.deepEqual(await loaded(bob.page.locator('.log .msg.has-image').last().locator('.msg-image img')), [30, 20]);
  await expect(ana.page.locator('.log .msg.pending')).toHaveCount(0);
  assert.equal(uploads.length, 1, 'the file went up once');
  const sent = await ana.page.evaluate(() => window.__sent);
  assert.ok(sent.length >= 2, `the client tried, then retried: ${sent.length} frames`);
  assert.deepEqual(new Set(sent.map((f) => f.attachmentId)), new Set([id]), 'every attempt names the one upload');
  assert.equal(new Set(sent.map((f) => f.clientMsgId)).size, 1, 'every attempt is the same message');
  ana.page.off('response', countUploads);
});

test('the composer turns away what it cannot send before uploading, and takes an image dropped on the chat', async () => {
  let uploads = 0;
  ana.page.on('request', (req) => req.url().endsWith('/attachments') && req.method() === 'POST' && uploads++);
  const notice = ana.page.locator('.composer-notice');

  await attach(ana.page, { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await expect(notice).toHaveText('“notes.txt” is not an image Converge can send. Choose a PNG, JPEG, GIF or WebP image.');
  await drop(ana.page, { name: 'huge.png', type: 'image/png', size: 12 * 1024 * 1024 });
  await expect(notice).toHaveText('“huge.png” is too large to send (12 MB): images can be up to 10 MB.');
  await expect(ana.page.locator('.staged')).toBeHidden();

  await drop(ana.page, { name: 'dropped.png', type: 'image/png', bytes: png(20, 30) });
  await expect(ana.page.locator('.staged .staged-name')).toHaveText('dropped.png');
  await expect(notice).toHaveText('');
  await ana.page.getByRole('button', { name: 'Remove the image dropped.png' }).click();
  await expect(ana.page.locator('.staged')).toBeHidden();
  assert.equal(uploads, 0, 'nothing was uploaded');
});

test('at 375 px the pictures fit without horizontal scrolling', async () => {
  await bob.page.setViewportSize(PHONE);
  await expect(bob.page.getByRole('heading', { level: 2, name: 'Ana Lima' })).toBeVisible();
  const fits = await bob.page.evaluate(() => {
    const log = document.querySelector('.log');
    const right = log.getBoundingClientRect().right;
    return (
      document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth &&
      log.scrollWidth <= log.clientWidth &&
      [...log.querySelectorAll('.msg-image')].every((box) => box.getBoundingClientRect().right <= right)
    );
  });
  assert.ok(fits, 'the log and its pictures fit the phone');
  await screenshot(bob.page, 'conversation-image-phone');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});
