// format.js — names, times and error messages as people read them.

/** Up to two initials of a name, for avatars. */
export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : [words[0] || '?'];
  return letters.map((w) => [...w][0].toUpperCase()).join('');
}

/** A stable palette index (0–7) for an id, so a person keeps their avatar colour. */
export function colorIndex(id) {
  let hash = 0;
  for (const c of String(id)) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return hash % 8;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDateFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

export function dayKey(iso) {
  return startOfDay(new Date(iso));
}

/** The time of a message. */
export function clock(iso) {
  return timeFmt.format(new Date(iso));
}

/** A chat list timestamp: the time today, the weekday this week, else the date. */
export function shortWhen(iso) {
  const d = new Date(iso);
  const days = (startOfDay(new Date()) - startOfDay(d)) / 86_400_000;
  if (days < 1) return timeFmt.format(d);
  if (days < 7) return weekdayFmt.format(d);
  return dateFmt.format(d);
}

/** A day separator: Today, Yesterday, or the full date. */
export function dayLabel(iso) {
  const days = Math.round((startOfDay(new Date()) - dayKey(iso)) / 86_400_000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return longDateFmt.format(new Date(iso));
}

/** What went wrong with a send, in words a person understands. */
export function sendErrorText(error, maxChars) {
  switch (error?.code) {
    case 'content_too_long':
      return `Too long to send: messages can have up to ${maxChars ?? 4000} characters.`;
    case 'empty_message':
      return 'An empty message cannot be sent.';
    case 'forbidden':
      return 'You are no longer a member of this chat, so the message was not sent.';
    case 'not_found':
      return 'This chat no longer exists.';
    case 'rate_limited':
      return 'You are sending too fast. Wait a moment, then retry.';
    case 'timeout':
    case 'disconnected':
      return 'Not sent: the connection kept failing.';
    case 'validation_failed':
    case 'invalid_seq':
      return 'The message was refused as invalid.';
    default:
      return 'Not sent: something went wrong on our side.';
  }
}

/** Why an edit (`action` 'edit') or a deletion ('delete') was refused, in words a person understands. */
export function changeErrorText(error, action, maxChars) {
  const verb = action === 'edit' ? 'saved' : 'deleted';
  switch (error?.code) {
    case 'empty_message':
      return 'A message cannot be empty. To remove it, delete it instead.';
    case 'content_too_long':
      return `Too long: messages can have up to ${maxChars ?? 4000} characters.`;
    case 'message_deleted':
      return 'This message has been deleted, so it cannot be edited.';
    case 'edit_conflict':
      return 'Not saved: this message was changed elsewhere while you edited it.';
    case 'forbidden':
      return action === 'edit' ? 'Only its sender can edit this message.' : 'You are not allowed to delete this message.';
    case 'not_found':
      return 'This message no longer exists.';
    case 'rate_limited':
      return `Not ${verb}: you are making changes too fast. Wait a moment, then try again.`;
    case 'disconnected':
    case 'stopped':
      return `Not ${verb}: you are offline. Try again when the connection is back.`;
    case 'timeout':
      return `Not ${verb}: the server did not answer in time. Try again.`;
    default:
      return `Not ${verb}: something went wrong on our side. Try again in a moment.`;
  }
}

/**
 * Why a reaction was not added (`on`) or not taken back, in words a person understands. A refused
 * emoji gets the server's reason: it names the rule ("a message carries at most 20 different emoji").
 */
export function reactionErrorText(error, on) {
  const what = on ? 'Your reaction was not added' : 'Your reaction was not taken back';
  switch (error?.code) {
    case 'validation_failed': {
      const reason = error.fields?.emoji ?? error.message;
      return reason ? sentence(`${what}: ${/^(must|is)\b/.test(reason) ? `the emoji ${reason}` : reason}`) : `${what}.`;
    }
    case 'message_deleted':
      return 'This message has been deleted, so it cannot be reacted to.';
    case 'forbidden':
      return 'You are no longer a member of this chat.';
    case 'not_found':
      return 'This message no longer exists.';
    case 'rate_limited':
      return `${what}: you are reacting too fast. Wait a moment, then try again.`;
    case 'disconnected':
    case 'stopped':
      return `${what}: you are offline. Try again when the connection is back.`;
    case 'timeout':
      return `${what}: the server did not answer in time. Try again.`;
    default:
      return `${what}: something went wrong on our side. Try again in a moment.`;
  }
}

/** What a message says, in a line of its own: its text, or that it is an image (and its caption). */
export function whatWasSent(message) {
  if (!message.image && !message.imageUrl) return message.content;
  return message.content ? `sent an image: ${message.content}` : 'sent an image';
}

const listFmt = new Intl.ListFormat('en', { type: 'conjunction' });

/** Names as a sentence lists them: "Ana, Bob and you". */
export function listNames(names) {
  return listFmt.format(names);
}

/** A REST error (sign-in, search, new chat) for people. */
export function apiErrorText(error) {
  switch (error?.code) {
    case 'network':
      return 'The server cannot be reached. Check your connection and try again.';
    case 'invalid_credentials':
      return 'That username or password is not right.';
    case 'username_taken':
      return 'That username is taken. Try another one.';
    case 'email_taken':
      return 'An account with that email exists already. Sign in instead?';
    case 'rate_limited':
      return 'Too many attempts. Wait a minute, then try again.';
    case 'account_deactivated':
      return 'This account has been deactivated.';
    case 'validation_failed':
      return 'Some fields need another look.';
    case 'forbidden':
      return 'You are not allowed to do that.';
    case 'internal':
    case 'unavailable':
      return 'Something went wrong on our side. Try again in a moment.';
    default:
      return error?.message || 'Something went wrong.';
  }
}

/**
 * Why a change to a group (its name, members, roles) was refused. The server's own words when it
 * gives a reason: it names the rule that was broken ("only the group's owner …"), which a
 * generic text could not; a refused field's reason before the request's.
 */
export function groupErrorText(error) {
  switch (error?.code) {
    case 'network':
    case 'rate_limited':
    case 'internal':
    case 'unavailable':
      return apiErrorText(error);
    default: {
      const [field, reason] = Object.entries(error?.fields ?? {})[0] ?? [];
      // "must be 1 to 128 characters" is said of a field: "The name must be …".
      if (reason && GROUP_FIELDS[field] && /^(must|is|are|cannot|can't|has|have)\b/i.test(reason)) {
        return sentence(`${GROUP_FIELDS[field]} ${reason}`);
      }
      const text = reason ?? error?.message;
      return text ? sentence(text) : 'Something went wrong. Try again in a moment.';
    }
  }
}

/** What a group's refused fields are to people. */
const GROUP_FIELDS = { title: 'the name', userId: 'this member', userIds: 'the people chosen' };

/** "the owner cannot be removed" → "The owner cannot be removed." */
function sentence(text) {
  const trimmed = String(text).trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** A file size as people read it: "840 bytes", "12 KB", "3.4 MB". */
export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  const mb = bytes / (1024 * 1024);
  return `${mb < 10 ? mb.toFixed(1).replace(/\.0$/, '') : Math.round(mb)} MB`;
}

/** Why a chosen file cannot be sent as an image (before asking the server), or null. */
export function imageProblem(file, types, maxBytes) {
  if (!types.includes(file.type)) {
    return `“${file.name || 'That file'}” is not an image Converge can send. Choose a PNG, JPEG, GIF or WebP image.`;
  }
  if (file.size > maxBytes) {
    return `“${file.name || 'That image'}” is too large to send (${fileSize(file.size)}): images can be up to ${fileSize(maxBytes)}.`;
  }
  if (file.size === 0) return `“${file.name || 'That image'}” is empty.`;
  return null;
}

/** Why an image upload failed, in words a person understands (the server's reason when it gave one). */
export function uploadErrorText(error) {
  switch (error?.code) {
    case 'payload_too_large': {
      // "an image has at most 10485760 bytes (10 MiB)": the limit as people read it, if it is there.
      const limit = /\(([^()]+)\)\s*$/.exec(error.message ?? '')?.[1];
      return limit ? `Not sent: the image is too large. Images can be up to ${limit}.` : 'Not sent: the image is too large.';
    }
    case 'unsupported_media_type':
      return 'Not sent: this file is not a PNG, JPEG, GIF or WebP image.';
    case 'invalid_image':
      // Too many pixels is said in plain words ("the image is 9000 × 9000 pixels; at most …");
      // a decoder's complaint is not.
      return /pixels/.test(error.message ?? '')
        ? `Not sent: ${error.message}.`
        : 'Not sent: the image cannot be read. The file may be damaged.';
    case 'network':
      return 'Not sent: the server cannot be reached. Check your connection, then retry.';
    case 'validation_failed':
      return 'Not sent: the upload expired before the message went. Retry to upload the image again.';
    case 'rate_limited':
      return 'You are sending too fast. Wait a moment, then retry.';
    case 'unauthorized':
    case 'invalid_token':
    case 'token_expired':
      return 'Not sent: your session has ended. Sign in again.';
    default:
      return 'Not sent: the image could not be uploaded. Try again in a moment.';
  }
}

/** Whether a send was refused for its image's id: an upload never sent expires, the file must go again. */
export function attachmentRefused(error) {
  return error?.code === 'validation_failed' && !!error.fields?.attachmentId;
}

/** Upload errors for which sending the same file again cannot succeed. */
export const FINAL_UPLOAD_CODES = new Set(['payload_too_large', 'unsupported_media_type', 'invalid_image']);
