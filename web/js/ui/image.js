// image.js — pictures in the log and the full-size viewer. A picture's box takes its size from the
// image's width and height before the bytes arrive, so the log does not jump when they do.

import { h, replaceChildren } from './dom.js';

/** Pictures in the log fit this square (the server's thumbnails do too). */
const BOX_MAX = 320;
/** Tiny pictures are enlarged to this on their short side, to be seen and tapped. */
const BOX_MIN = 64;

/** The size to show a `width`×`height` image at, or null when its size is not known. */
export function boxSize(width, height) {
  if (!(width > 0 && height > 0)) return null;
  const scale = Math.min(BOX_MAX / width, BOX_MAX / height, Math.max(1, BOX_MIN / Math.min(width, height)));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * A picture in a message: a button that opens it full size.
 * @param {object} o
 * @param {string} o.alt what the picture is, for screen readers ("Image from Ana")
 * @param {string} o.label the button's name ("Open the image from Ana")
 * @param {number} [o.width] the image's pixel size, to reserve its box
 * @param {number} [o.height]
 * @param {string|null} o.src an object URL to show now, or null to `load` one
 * @param {() => Promise<string>} [o.load] fetches the picture, resolving with its object URL
 * @param {boolean} [o.retryLoad] false after a recent failure: show it failed, load on click
 * @param {string} o.unavailable what the box says when the picture cannot be shown
 * @param {() => void} o.onOpen
 */
export function imageBox({ alt, label, width, height, src, load, retryLoad = true, unavailable, onOpen }) {
  const img = h('img', { alt, decoding: 'async', referrerpolicy: 'no-referrer', draggable: 'false' });
  const note = h('span', { class: 'image-note', hidden: true }, unavailable);
  const box = h('button', { type: 'button', class: 'msg-image loading', 'aria-label': label }, img, note);
  const size = boxSize(width, height);
  if (size) {
    // Set through CSSOM: the page's CSP refuses style attributes, not style properties.
    box.style.width = `${size.width}px`;
    box.style.aspectRatio = `${size.width} / ${size.height}`;
  } else {
    box.classList.add('unsized');
  }
  const failed = () => {
    box.classList.remove('loading');
    box.classList.add('failed');
    img.hidden = true;
    note.hidden = false;
  };
  const show = (url) => {
    box.classList.remove('failed');
    img.hidden = false;
    note.hidden = true;
    img.src = url;
  };
  img.addEventListener('load', () => box.classList.remove('loading'));
  img.addEventListener('error', failed);
  const fetchIt = () => {
    box.classList.add('loading');
    load().then(show, failed);
  };
  if (src) show(src);
  else if (load && retryLoad) fetchIt();
  else failed();
  box.addEventListener('click', () => {
    // A picture that could not be fetched is fetched again; one that is here opens.
    if (box.classList.contains('failed') && load) fetchIt();
    else onOpen();
  });
  return box;
}

/**
 * Shows a picture full size in a modal dialog; Escape, the Close button or a click beside the
 * picture closes it, and focus goes back where it was.
 * @param {object} o
 * @param {string} o.title the dialog's name ("Image from Ana")
 * @param {string} [o.caption]
 * @param {string|null} o.src an object URL owned by someone else (shown, never revoked)
 * @param {(signal: AbortSignal) => Promise<string>} [o.load] fetches the full-size picture; the
 *   object URL it resolves with is revoked when the dialog closes
 * @param {string} [o.fileName] the name a download takes
 * @param {(error: Error) => string} o.errorText
 * @param {() => HTMLElement|null} [o.findOpener] the opener anew, if it was re-rendered meanwhile
 */
export function openImageViewer({ title, caption, src, load, fileName = 'image', errorText, findOpener }) {
  const opener = document.activeElement;
  const aborter = new AbortController();
  let owned = null;
  const status = h('p', { class: 'viewer-status', role: 'status' }, 'Loading the image…');
  const img = h('img', { class: 'viewer-image', alt: title, hidden: true, referrerpolicy: 'no-referrer' });
  const download = h('a', { class: 'viewer-download', hidden: true, download: fileName }, 'Download');
  const close = h('button', { type: 'button', class: 'viewer-close', 'aria-label': 'Close', onclick: () => dialog.close() }, '×');
  const stage = h('div', { class: 'viewer-stage' }, status, img);
  const dialog = h(
    'dialog',
    { class: 'viewer', 'aria-labelledby': 'viewer-title' },
    h('header', { class: 'viewer-bar' }, h('h2', { id: 'viewer-title', class: 'viewer-title' }, title), download, close),
    stage,
    caption ? h('p', { class: 'viewer-caption' }, caption) : null,
  );
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog || e.target === stage) dialog.close();
  });
  dialog.addEventListener('close', () => {
    aborter.abort();
    dialog.remove();
    if (owned) URL.revokeObjectURL(owned);
    const back = opener?.isConnected ? opener : findOpener?.();
    back?.focus({ preventScroll: true });
  });
  img.addEventListener('load', () => {
    status.hidden = true;
    img.hidden = false;
  });
  img.addEventListener('error', () => replaceChildren(status, 'The image cannot be shown.'));
  document.body.append(dialog);
  dialog.showModal();
  close.focus();

  const show = (url) => {
    img.src = url;
    download.href = url;
    download.hidden = false;
  };
  if (src) show(src);
  else {
    load(aborter.signal).then(
      (url) => {
        if (aborter.signal.aborted) {
          URL.revokeObjectURL(url); // closed while it was on its way
          return;
        }
        owned = url;
        show(url);
      },
      (error) => {
        if (!aborter.signal.aborted) replaceChildren(status, errorText(error));
      },
    );
  }
  return dialog;
}
