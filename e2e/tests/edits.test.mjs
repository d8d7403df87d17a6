// Editing and deleting messages: Ana edits one of hers in the composer and Bob sees the new text
// and "(edited)" live; the actions are reached by keyboard and Escape cancels; an edit the server
// refuses says why and changes nothing; a deletion is confirmed in a dialog and leaves "Message
// deleted" for both, in the log and the chat list; only the sender may edit, and in a group its
// owner may delete anyone's message; and changes made while Bob is offline reach him when he
// reconnects, because his client asks for them (`editsAfter`).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import {
  composer, cut, frameCount, framesSince, focused, messageAt, messageTexts, openChat, reconnect, recordFrames, send, twoInADirectChat,
  whereAmI,
} from '../lib/browser.mjs';
import { createGroup } from '../lib/rest.mjs';

const env = useStackAndBrowser();
let ana;
let bob;

const chatItem = (page, title) =>
  page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: new RegExp(`^${title}`) });
const deleteDialog = (page) => page.getByRole('alertdialog', { name: 'Delete this message?' });

/** Edits message `seq` in the composer, as a person does: Edit, new text, Enter. */
async function edit(page, seq, content) {
  await messageAt(page, seq).getByRole('button', { name: /^Edit message/ }).click();
  await expect(page.locator('.editing-bar')).toBeVisible();
  await composer(page).fill(content);
  await composer(page).press('Enter');
  await expect(page.locator('.editing-bar')).toBeHidden();
}

/** Deletes message `seq` and confirms. */
async function remove(page, seq) {
  await messageAt(page, seq).getByRole('button', { name: /^Delete message/ }).click();
  await deleteDialog(page).getByRole('button', { name: 'Delete' }).click();
  await expect(deleteDialog(page)).toBeHidden();
}

/** Ana's other device (here the REST API with her page's token) edits message `seq` of the open chat. */
async function editElsewhere(page, seq, body) {
  const { chatId, token } = await whereAmI(page);
  const res = await fetch(`${env.stack.url}/chats/${chatId}/messages/${seq}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

/**
 * Ana, in a direct chat with Bob, sends `original`; then, with her connection cut, edits it to
 * `content` and saves. Returns the count of her page's frames before the edit.
 */
async function saveAnEditOffline(names, original, content) {
  [ana, bob] = await twoInADirectChat(env, names[0], names[1], { init: recordFrames });
  await send(ana.page, original);
  await openChat(bob.page, names[0]);
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText(original);

  await cut(ana.page);
  const mark = await frameCount(ana.page);
  await messageAt(ana.page, 1).getByRole('button', { name: `Edit message: ${original}` }).click();
  await composer(ana.page).fill(content);
  await composer(ana.page).press('Enter');
  await expect(ana.page.getByText('Offline: your edit will be saved when the connection is back.')).toBeVisible();
  return mark;
}

test('Ana edits her message: Bob sees the new text and "(edited)" live, and so does she', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana Edit', 'Bob Edit', { init: recordFrames });
  await send(ana.page, 'See you at 3pm');
  await openChat(bob.page, 'Ana Edit');
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('See you at 3pm');
  await expect(messageAt(bob.page, 1).locator('.edited')).toHaveCount(0);

  // Ana has a draft going: it waits while she edits, and comes back after.
  await composer(ana.page).fill('half a thought');
  await messageAt(ana.page, 1).getByRole('button', { name: 'Edit message: See you at 3pm' }).click();
  await expect(composer(ana.page)).toHaveValue('See you at 3pm');
  await expect(ana.page.locator('.editing-bar .editing-original')).toHaveText('See you at 3pm');
  await composer(ana.page).fill('See you at 4pm');
  await composer(ana.page).press('Enter');

  for (const page of [bob.page, ana.page]) {
    await expect(messageAt(page, 1).locator('.text')).toHaveText('See you at 4pm');
    await expect(messageAt(page, 1).locator('.edited')).toHaveText('(edited)');
    await expect(page.locator('.log .msg')).toHaveCount(1);
  }
  await expect(ana.page.locator('.editing-bar')).toBeHidden();
  await expect(composer(ana.page)).toHaveValue('half a thought');
  await expect(chatItem(bob.page, 'Ana Edit').locator('.chat-preview')).toHaveText('See you at 4pm');
  await expect(chatItem(ana.page, 'Bob Edit').locator('.chat-preview')).toHaveText('You: See you at 4pm');

  // It went as one edit_message, acked with the message as it is now.
  const frames = await framesSince(ana.page);
  const edits = frames.filter((f) => f.out?.type === 'edit_message').map((f) => f.out);
  assert.equal(edits.length, 1);
  const { chatId } = await whereAmI(ana.page);
  assert.deepEqual({ chatId: edits[0].chatId, seq: edits[0].seq, content: edits[0].content }, { chatId, seq: 1, content: 'See you at 4pm' });
  const ack = frames.find((f) => f.in?.type === 'ack' && f.in.req === edits[0].req)?.in;
  assert.equal(ack?.message.content, 'See you at 4pm');
  assert.equal(ack.message.editSeq, 1);
  assert.ok(ack.message.editedAt, 'the ack carries editedAt');
});

test('the actions are reached by keyboard; Escape cancels an edit and leaves the chat open', async () => {
  const page = ana.page;
  // From the log, Tab reaches the message's actions, which show when they have focus (the mouse
  // is out of the way: pointing at the message would show them too).
  await page.mouse.move(0, 0);
  await page.locator('.log').focus();
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), 'Edit message: See you at 4pm');
  const shown = () => page.evaluate(() => getComputedStyle(document.activeElement.closest('.msg-actions')).opacity);
  assert.equal(await shown(), '1', 'the actions show when reached by keyboard');
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), 'Delete message: See you at 4pm');
  await page.keyboard.press('Shift+Tab');

  const before = await frameCount(page);
  await page.keyboard.press('Enter');
  await expect.poll(() => focused(page), (f) => assert.equal(f, 'Message Bob Edit'));
  await page.keyboard.type(' or 5pm');
  await expect(composer(page)).toHaveValue('See you at 4pm or 5pm');
  await page.keyboard.press('Escape');

  await expect(page.locator('.editing-bar')).toBeHidden();
  await expect(composer(page)).toHaveValue('half a thought');
  await expect(page.getByRole('heading', { level: 2, name: 'Bob Edit' })).toBeVisible();
  await expect(messageAt(page, 1).locator('.text')).toHaveText('See you at 4pm');
  const sent = (await framesSince(page, before)).filter((f) => f.out?.type === 'edit_message');
  assert.deepEqual(sent, [], 'nothing was sent for a cancelled edit');
});

test('an edit the server refuses says why, and the message keeps its text', async () => {
  const page = ana.page;
  const before = await frameCount(page);
  await messageAt(page, 1).getByRole('button', { name: /^Edit message/ }).click();
  await composer(page).fill('');
  await composer(page).press('Enter');
  await expect(page.locator('.composer-notice')).toHaveText('A message cannot be empty. To remove it, delete it instead.');

  // The server said no, not the page.
  const frames = await framesSince(page, before);
  const sent = frames.find((f) => f.out?.type === 'edit_message')?.out;
  assert.equal(sent?.content, '');
  const refusal = frames.find((f) => f.in?.type === 'error' && f.in.req === sent.req)?.in;
  assert.equal(refusal?.code, 'empty_message');

  // Still editing, with the text left as it was typed to fix; the message is unchanged for both.
  await expect(page.locator('.editing-bar')).toBeVisible();
  await expect(composer(page)).toHaveValue('');
  for (const p of [page, bob.page]) await expect(messageAt(p, 1).locator('.text')).toHaveText('See you at 4pm');

  await composer(page).fill('x'.repeat(4001));
  await composer(page).press('Enter');
  await expect(page.locator('.composer-notice')).toHaveText('Too long: messages can have up to 4000 characters.');
  await composer(page).press('Escape');
  await expect(page.locator('.editing-bar')).toBeHidden();
  await expect(page.locator('.composer-notice')).toHaveText('');
  await expect(composer(page)).toHaveValue('half a thought');
  for (const p of [page, bob.page]) await expect(messageAt(p, 1).locator('.text')).toHaveText('See you at 4pm');
});

test('Ana deletes a message after confirming: both see "Message deleted", in the log and the chat list', async () => {
  await send(ana.page, 'Oops, wrong chat');
  await expect(messageAt(bob.page, 2).locator('.text')).toHaveText('Oops, wrong chat');
  await expect(chatItem(bob.page, 'Ana Edit').locator('.chat-preview')).toHaveText('Oops, wrong chat');

  // Cancel deletes nothing, and focus goes back to the button.
  const before = await frameCount(ana.page);
  await messageAt(ana.page, 2).getByRole('button', { name: 'Delete message: Oops, wrong chat' }).click();
  const dialog = deleteDialog(ana.page);
  await expect(dialog).toBeVisible();
  await expect(dialog.locator('.confirm-quote')).toHaveText('Oops, wrong chat');
  await expect(dialog).toContainText('It will be deleted for everyone in this chat.');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  await expect.poll(() => focused(ana.page), (f) => assert.equal(f, 'Delete message: Oops, wrong chat'));
  assert.deepEqual((await framesSince(ana.page, before)).filter((f) => f.out?.type === 'delete_message'), []);

  await remove(ana.page, 2);
  for (const page of [ana.page, bob.page]) {
    const gone = messageAt(page, 2);
    await expect(gone.locator('.tombstone')).toHaveText('Message deleted');
    await expect(gone.locator('.text')).toHaveCount(0);
    await expect(gone.getByRole('button')).toHaveCount(0);
    await expect(messageAt(page, 1).locator('.text')).toHaveText('See you at 4pm');
  }
  await expect(chatItem(bob.page, 'Ana Edit').locator('.chat-preview')).toHaveText('Message deleted');
  await expect(chatItem(ana.page, 'Bob Edit').locator('.chat-preview')).toHaveText('Message deleted');

  // History from REST, after a reload, says the same.
  await bob.page.reload();
  await expect(bob.page.getByRole('heading', { level: 2, name: 'Ana Edit' })).toBeVisible();
  await expect(messageAt(bob.page, 2).locator('.tombstone')).toHaveText('Message deleted');
  await expect(messageAt(bob.page, 1).locator('.edited')).toHaveText('(edited)');
  assert.deepEqual(await messageTexts(bob.page), ['See you at 4pm']);
  await expect(chatItem(bob.page, 'Ana Edit').locator('.chat-preview')).toHaveText('Message deleted');
});

test('only the sender may edit; in a group its owner may delete anyone’s message, a member may not', async () => {
  // The direct chat: Bob may neither edit nor delete Ana's message (he may react to it).
  await send(bob.page, 'mine to change');
  await expect(messageAt(bob.page, 3).getByRole('button', { name: /^Edit message/ })).toHaveCount(1);
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('See you at 4pm');
  await expect(messageAt(bob.page, 1).getByRole('button', { name: /^(Edit|Delete)/ })).toHaveCount(0);
  await expect(messageAt(ana.page, 3).locator('.text')).toHaveText('mine to change');
  await expect(messageAt(ana.page, 3).getByRole('button', { name: /^(Edit|Delete)/ })).toHaveCount(0);

  // A group Ana owns, with Bob as a member.
  const anaAt = await whereAmI(ana.page);
  const bobAt = await whereAmI(bob.page);
  await createGroup(env.stack, { token: anaAt.token }, 'Edit rights', [bobAt.userId]);
  await openChat(bob.page, 'Edit rights');
  await openChat(ana.page, 'Edit rights');
  await send(bob.page, 'from a member');
  await expect(messageAt(ana.page, 1).locator('.text')).toHaveText('from a member');
  await send(ana.page, 'from the owner');
  await expect(messageAt(bob.page, 2).locator('.text')).toHaveText('from the owner');

  // Bob may change his own message and none of Ana's.
  await expect(messageAt(bob.page, 1).getByRole('button', { name: 'Edit message: from a member' })).toHaveCount(1);
  await expect(messageAt(bob.page, 1).getByRole('button', { name: 'Delete message: from a member' })).toHaveCount(1);
  await expect(messageAt(bob.page, 2).getByRole('button', { name: /^(Edit|Delete)/ })).toHaveCount(0);

  // Ana, the owner, may delete Bob's message but not edit it.
  const bobsMessage = messageAt(ana.page, 1);
  await expect(bobsMessage.getByRole('button', { name: /^Edit/ })).toHaveCount(0);
  await bobsMessage.getByRole('button', { name: 'Delete message from Bob Edit: from a member' }).click();
  await expect(deleteDialog(ana.page)).toContainText("Bob Edit's message will be deleted for everyone in this chat.");
  await deleteDialog(ana.page).getByRole('button', { name: 'Delete' }).click();
  for (const page of [ana.page, bob.page]) await expect(messageAt(page, 1).locator('.tombstone')).toHaveText('Message deleted');
  await expect(messageAt(bob.page, 2).locator('.text')).toHaveText('from the owner');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

test('changes made while Bob is offline reach him when he reconnects, through editsAfter', async () => {
  const [bobAway, anaHere] = await twoInADirectChat(env, 'Bob Away', 'Ana Here', { init: recordFrames });
  await openChat(anaHere.page, 'Bob Away');
  for (const text of ['first version', 'to be deleted', 'last word']) await send(anaHere.page, text);
  await expect(messageAt(bobAway.page, 3).locator('.text')).toHaveText('last word');
  const { chatId } = await whereAmI(bobAway.page);

  await cut(bobAway.page);
  const mark = await frameCount(bobAway.page);
  // Neither change touches the chat's last message: only the resumed changes can bring them.
  await edit(anaHere.page, 1, 'second version');
  await remove(anaHere.page, 2);
  await expect(messageAt(anaHere.page, 2).locator('.tombstone')).toHaveText('Message deleted');
  assert.deepEqual(await messageTexts(bobAway.page), ['first version', 'to be deleted', 'last word'], 'Bob is away');

  await reconnect(bobAway.page);
  await expect(messageAt(bobAway.page, 1).locator('.text')).toHaveText('second version');
  await expect(messageAt(bobAway.page, 1).locator('.edited')).toHaveText('(edited)');
  await expect(messageAt(bobAway.page, 2).locator('.tombstone')).toHaveText('Message deleted');
  assert.deepEqual(await messageTexts(bobAway.page), ['second version', 'last word']);

  // On the wire: his points in the auth frame, the two changes, then `resumed` with the new point.
  const resumedIn = (frames) => frames.find((f) => f.in?.type === 'resumed')?.in;
  const frames = await expect.poll(() => framesSince(bobAway.page, mark), (f) => assert.ok(resumedIn(f), 'resumed'));
  const auth = frames.find((f) => f.out?.type === 'auth').out;
  assert.deepEqual(auth.resume, { [chatId]: 3 });
  assert.deepEqual(auth.editsAfter, { [chatId]: 0 });
  const updates = frames
    .filter((f) => f.in?.type === 'message_updated')
    .map(({ in: { message: m } }) => ({ seq: m.seq, editSeq: m.editSeq, content: m.content, deleted: !!m.deletedAt }));
  assert.deepEqual(updates, [
    { seq: 1, editSeq: 1, content: 'second version', deleted: false },
    { seq: 2, editSeq: 2, content: '', deleted: true },
  ]);
  assert.deepEqual(resumedIn(frames).edits, { [chatId]: 2 });
  assert.ok(frames.findIndex((f) => f.in?.type === 'message_updated') < frames.findIndex((f) => f.in?.type === 'resumed'));

  // A change that reaches him live moves his point on: the next reconnect asks from there.
  await edit(anaHere.page, 3, 'really the last word');
  await expect(messageAt(bobAway.page, 3).locator('.text')).toHaveText('really the last word');
  await cut(bobAway.page);
  const again = await frameCount(bobAway.page);
  await reconnect(bobAway.page);
  const later = await expect.poll(() => framesSince(bobAway.page, again), (f) => assert.ok(resumedIn(f), 'resumed'));
  assert.deepEqual(later.find((f) => f.out?.type === 'auth').out.editsAfter, { [chatId]: 3 });
  assert.deepEqual(resumedIn(later).edits, { [chatId]: 3 });
  assert.deepEqual(later.filter((f) => f.in?.type === 'message_updated'), [], 'nothing was missed, nothing is sent again');
  assert.deepEqual(await messageTexts(bobAway.page), ['second version', 'really the last word']);
  assert.deepEqual([...bobAway.page.errors, ...anaHere.page.errors], [], 'no script errors');
  await bobAway.context.close();
  await anaHere.context.close();
});

test('the chat’s last message changed while Ana was away shows changed when she is back', async () => {
  // Her `ready` carries the chat's last message as it is now, before the resumed change does.
  [ana, bob] = await twoInADirectChat(env, 'Ana Away', 'Bob Here', { init: recordFrames });
  await send(ana.page, 'plan A');
  await openChat(bob.page, 'Ana Away');
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('plan A');
  // Bob has read it, and Ana has been told: no receipt is still to come to redraw her view.
  await expect(messageAt(ana.page, 1).locator('.status-text')).toHaveText('Read');
  await cut(ana.page);
  await editElsewhere(ana.page, 1, { content: 'plan B' });
  await reconnect(ana.page);
  for (const page of [ana.page, bob.page]) await expect(messageAt(page, 1).locator('.text')).toHaveText('plan B');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

test('an edit saved while Ana is offline is saved when she is back, and Bob sees it', async () => {
  const mark = await saveAnEditOffline(['Ana Offline', 'Bob Online'], 'meet at noon', 'meet at one');
  await expect(ana.page.locator('.editing-bar')).toBeVisible();
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('meet at noon');

  await reconnect(ana.page);
  await expect(ana.page.locator('.editing-bar')).toBeHidden();
  for (const page of [ana.page, bob.page]) {
    await expect(messageAt(page, 1).locator('.text')).toHaveText('meet at one');
    await expect(messageAt(page, 1).locator('.edited')).toHaveText('(edited)');
  }
  // It went out once the connection was back, naming the text it replaces.
  const edits = (await framesSince(ana.page, mark)).filter((f) => f.out?.type === 'edit_message').map((f) => f.out);
  assert.deepEqual(edits.map(({ content, replaces }) => ({ content, replaces })), [{ content: 'meet at one', replaces: 'meet at noon' }]);
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

test('an edit saved offline and then cancelled with Escape is never sent', async () => {
  const mark = await saveAnEditOffline(['Ana Undecided', 'Bob Waiting'], 'keep this', 'on second thought');
  await composer(ana.page).press('Escape');
  await expect(ana.page.locator('.editing-bar')).toBeHidden();
  await expect(ana.page.getByText('Offline: your edit will be saved', { exact: false })).toHaveCount(0);

  await reconnect(ana.page);
  // A message sent after the reconnect goes out after anything the outbox still held.
  await send(ana.page, 'back online');
  await expect(messageAt(bob.page, 2).locator('.text')).toHaveText('back online');
  const out = (await framesSince(ana.page, mark)).filter((f) => f.out).map((f) => f.out.type);
  assert.ok(out.includes('send_message'), `${out}`);
  assert.ok(!out.includes('edit_message'), `the withdrawn edit went out: ${out}`);
  for (const page of [ana.page, bob.page]) {
    await expect(messageAt(page, 1).locator('.text')).toHaveText('keep this');
    await expect(messageAt(page, 1).locator('.edited')).toHaveCount(0);
  }
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

test('an offline edit refused on reconnect is told even after Ana left the edit', async () => {
  const mark = await saveAnEditOffline(['Ana Roaming', 'Bob Still'], 'plan A', 'plan C');
  // She opens the chat again, which leaves the edit (it still waits to go out) …
  await ana.page.evaluate(() => (location.hash = ''));
  await openChat(ana.page, 'Bob Still');
  await expect(ana.page.locator('.editing-bar')).toBeHidden();
  // … while her phone changes the message.
  await editElsewhere(ana.page, 1, { content: 'plan B' });

  await reconnect(ana.page);
  await expect(ana.page.getByText('Not saved: this message was changed elsewhere while you edited it.', { exact: false })).toBeVisible();
  for (const page of [ana.page, bob.page]) await expect(messageAt(page, 1).locator('.text')).toHaveText('plan B');
  const edits = (await framesSince(ana.page, mark)).filter((f) => f.out?.type === 'edit_message').map((f) => f.out.replaces);
  assert.deepEqual(edits, ['plan A']);
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

test('an edit of a message changed on another device meanwhile is not saved over that change', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana Laptop', 'Bob Reader');
  await send(ana.page, 'the plan: A');
  await openChat(bob.page, 'Ana Laptop');
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('the plan: A');

  // Ana begins an edit on her laptop; her phone changes the message first.
  await messageAt(ana.page, 1).getByRole('button', { name: 'Edit message: the plan: A' }).click();
  await composer(ana.page).fill('the plan: C');
  await editElsewhere(ana.page, 1, { content: 'the plan: B', replaces: 'the plan: A' });
  await expect(messageAt(ana.page, 1).locator('.text')).toHaveText('the plan: B');

  // Saving the laptop's edit would undo the phone's: it is refused, and Ana is told.
  await composer(ana.page).press('Enter');
  await expect(ana.page.getByText('Not saved: this message was changed elsewhere while you edited it.', { exact: false })).toBeVisible();
  await expect(composer(ana.page)).toHaveValue('the plan: C');
  await expect(ana.page.locator('.editing-bar .editing-original')).toHaveText('the plan: B');
  for (const page of [ana.page, bob.page]) await expect(messageAt(page, 1).locator('.text')).toHaveText('the plan: B');

  // Having seen it, she saves again: now her text replaces what it says.
  await composer(ana.page).press('Enter');
  await expect(ana.page.locator('.editing-bar')).toBeHidden();
  for (const page of [ana.page, bob.page]) await expect(messageAt(page, 1).locator('.text')).toHaveText('the plan: C');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

test('an edit whose answer was lost is sent again after the reconnect and saved once', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana Retry', 'Bob Retry', { init: recordFrames });
  await send(ana.page, 'version one');
  await openChat(bob.page, 'Ana Retry');
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('version one');
  const mark = await frameCount(ana.page);

  // The connection drops as soon as the edit is out: its ack cannot arrive.
  await ana.page.evaluate(() => (window.__cutAfter = 'edit_message'));
  await edit(ana.page, 1, 'version two');
  for (const page of [ana.page, bob.page]) await expect(messageAt(page, 1).locator('.text')).toHaveText('version two');

  const sent = (await framesSince(ana.page, mark)).filter((f) => f.out?.type === 'edit_message').map((f) => f.out);
  assert.equal(sent.length, 2, 'sent, and sent again on the new connection');
  for (const frame of sent) assert.deepEqual([frame.content, frame.replaces], ['version two', 'version one']);
  // Saved once, whichever attempt made it: the chat counts one change.
  const { chatId, token } = await whereAmI(ana.page);
  const chat = await (await fetch(`${env.stack.url}/chats/${chatId}`, { headers: { authorization: `Bearer ${token}` } })).json();
  assert.equal(chat.lastEditSeq, 1);
  await expect(ana.page.getByText('Not saved', { exact: false })).toHaveCount(0);
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});

test('a message deleted while Ana is offline is deleted for both when she is back', async () => {
  [ana, bob] = await twoInADirectChat(env, 'Ana Tidy', 'Bob Sees', { init: recordFrames });
  await send(ana.page, 'sent to the wrong chat');
  await openChat(bob.page, 'Ana Tidy');
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('sent to the wrong chat');

  await cut(ana.page);
  const mark = await frameCount(ana.page);
  await remove(ana.page, 1);
  await expect(ana.page.getByText('Offline: the message will be deleted when the connection is back.')).toBeVisible();
  await expect(messageAt(bob.page, 1).locator('.text')).toHaveText('sent to the wrong chat');

  await reconnect(ana.page);
  for (const page of [ana.page, bob.page]) await expect(messageAt(page, 1).locator('.tombstone')).toHaveText('Message deleted');
  await expect(ana.page.getByText('Offline: the message will be deleted', { exact: false })).toHaveCount(0);
  const deletions = (await framesSince(ana.page, mark)).filter((f) => f.out?.type === 'delete_message');
  assert.equal(deletions.length, 1, 'sent once, after the reconnect');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
  await ana.context.close();
  await bob.context.close();
});
