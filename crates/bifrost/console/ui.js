// The console's building blocks: elements built without HTML parsing, formatting, the alert
// line and the modal dialog. Nothing here talks to Bifrost.

// Builds elements without ever parsing strings as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v; // CSSOM, which the console's CSP allows

    else if (k in el && k !== 'list' && !k.startsWith('aria') && !k.startsWith('data')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel) => document.querySelector(sel);

// Replaces an element's children; like `h`, it flattens arrays and drops empty ones.
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

// Live updates redraw parts of a page; the control that had focus (by its data-key) keeps it.
export function keepFocus(draw) {
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.key : null;
  draw();
  if (key) {
    const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again && again !== document.activeElement) again.focus();
  }
}

export function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0, v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + ' ' + units[i];
}

export function when(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

export function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return '—';
  seconds = Math.round(seconds);
  const hh = Math.floor(seconds / 3600), mm = Math.floor((seconds % 3600) / 60), ss = seconds % 60;
  return hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${ss} s` : `${ss} s`;
}

export function joinPath(dir, name) {
  if (dir.endsWith('/') || dir.endsWith('\\')) return dir + name;
  return dir + (dir.includes('\\') && !dir.includes('/') ? '\\' : '/') + name;
}

export function baseName(p) {
  const t = p.replace(/[\\/]+$/, '');
  return t.slice(Math.max(t.lastIndexOf('/'), t.lastIndexOf('\\')) + 1) || p;
}

// A path or object key that may wrap after each `/` or `\\` rather than inside a name.
export function breakable(p) {
  const parts = String(p ?? '').split(/(?<=[\\/])/);
  return parts.flatMap((part, i) => (i ? [document.createElement('wbr'), part] : [part]));
}

export function showError(e) {
  const box = $('#alert');
  fill(box, 
    h('span', {}, e instanceof Error ? e.message : String(e)),
    h('button', { type: 'button', class: 'link', onclick: () => { box.hidden = true; } }, 'Dismiss'),
  );
  box.hidden = false;
}

export function clearError() { $('#alert').hidden = true; }

export function badge(s) { return h('span', { class: `badge ${s}` }, s.replaceAll('_', ' ')); }

export function progressBar(done, total, label) {
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : (done > 0 ? 100 : 0);
  return h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), 'aria-label': label || 'progress' },
    h('div', { style: `width:${pct}%` }));
}

// A modal dialog; resolves with the value `onSubmit` returns, or null when cancelled.
export function dialog(title, body, { submit = 'OK', danger = false, onSubmit } = {}) {
  const dlg = $('#dialog');
  return new Promise((resolve) => {
    const error = h('p', { class: 'error', role: 'alert' });
    const cancel = h('button', { type: 'button', onclick: () => { dlg.close(); } }, 'Cancel');
    const ok = h('button', { type: 'submit', class: danger ? 'danger primary' : 'primary' }, submit);
    const form = h('form', {
      method: 'dialog',
      onsubmit: async (ev) => {
        ev.preventDefault();
        ok.disabled = true;
        error.textContent = '';
        try {
          const value = onSubmit ? await onSubmit(form) : true;
          resolved = true;
          dlg.close();
          resolve(value);
        } catch (e) {
          error.textContent = e.message;
        } finally {
          ok.disabled = false;
        }
      },
    }, h('h2', { id: 'dialog-title' }, title), body, error, h('div', { class: 'row' }, ok, cancel));
    let resolved = false;
    fill(dlg, form);
    dlg.onclose = () => { if (!resolved) resolve(null); };
    dlg.showModal();
    const first = form.querySelector('input, textarea, select');
    (first || ok).focus();
  });
}

export function csvEscape(s) { return '"' + String(s).replaceAll('"', '""') + '"'; }

export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

