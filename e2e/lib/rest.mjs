// Arranging data over the services' public REST APIs, for tests that need more of it than a
// person would type.

async function call(method, url, { token, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/** Registers a user; returns {id, username, token}. */
export async function registerUser(stack, username, displayName) {
  const body = { username, displayName, email: `${username}@example.com`, password: 'correct horse battery' };
  const res = await call('POST', `${stack.usersUrl}/auth/register`, { body });
  return { id: res.user.id, username, token: res.accessToken };
}

export function createDirectChat(stack, user, otherId) {
  return call('POST', `${stack.url}/chats`, { token: user.token, body: { kind: 'direct', participantIds: [otherId] } });
}

/** Sends a message; `replyTo`, the seq of the message it answers. */
export function sendMessage(stack, user, chatId, content, { replyTo } = {}) {
  return call('POST', `${stack.url}/chats/${chatId}/messages`, {
    token: user.token,
    body: { clientMsgId: crypto.randomUUID(), content, replyTo },
  });
}

export function markRead(stack, user, chatId, seq) {
  return call('POST', `${stack.url}/chats/${chatId}/read`, { token: user.token, body: { seq } });
}

export function addParticipants(stack, token, chatId, userIds) {
  return call('POST', `${stack.url}/chats/${chatId}/participants`, { token, body: { userIds } });
}

export function leaveChat(stack, user, chatId) {
  return call('POST', `${stack.url}/chats/${chatId}/leave`, { token: user.token });
}

export function createGroup(stack, user, title, participantIds) {
  return call('POST', `${stack.url}/chats`, { token: user.token, body: { kind: 'group', title, participantIds } });
}

export function setParticipantRole(stack, user, chatId, userId, role) {
  return call('PUT', `${stack.url}/chats/${chatId}/participants/${userId}/role`, { token: user.token, body: { role } });
}

/** Adds `user`'s reaction `emoji` to message `seq`; returns the message as it is now. */
export function addReaction(stack, user, chatId, seq, emoji) {
  return call('PUT', `${stack.url}/chats/${chatId}/messages/${seq}/reactions/${encodeURIComponent(emoji)}`, { token: user.token });
}
