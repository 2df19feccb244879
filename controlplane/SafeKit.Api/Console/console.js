// SafeKit web console: talks to the API of the node that served it, with the token the operator
// signed in with (kept for this browser tab only). Live: a server-sent event stream read with
// fetch (EventSource cannot send the token), and the cluster re-read on every event.
'use strict';

const TOKEN_KEY = 'safekit-token';
const ACTIONS = ['start', 'stop', 'restart', 'stopstart', 'forcestop'];
// A mirror's PRIM also offers these (the swap moves PRIM to the peer; verify compares both copies).
const PRIM_ACTIONS = ['swap', 'verify'];
const PALETTE = ['#0969da', '#8250df', '#bf3989', '#1a7f37', '#bc4c00', '#0a7ea4', '#6639ba', '#953800', '#116329', '#4d2d00'];
const NOBODY = '#d0d7de';
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY);
let refreshTimer = null;
let refreshing = false;
let refreshAgain = false;
let streamAbort = null;
let lastCluster = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

class ApiError extends Error {
  constructor(status, title, detail) { super(detail || title); this.status = status; this.title = title; }
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: 'Bearer ' + token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { signOut('The token was refused (401): sign in again.'); throw new ApiError(401, 'unauthorized'); }
  const type = response.headers.get('content-type') || '';
  const body = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, body.title || response.statusText, body.detail || '');
  return body;
}

function toast(text, isError) {
  const t = $('toast');
  t.textContent = text;
  t.style.background = isError ? 'var(--dead)' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  if (streamAbort) streamAbort.abort();
  clearInterval(refreshTimer);
  $('console').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  setLive(false);
}

async function signIn(candidate) {
  token = candidate;
  try {
    await api('/api/v1/node');
  } catch (e) {
    if (e.status !== 401) $('login-error').textContent = 'Cannot sign in: ' + e.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  $('console').hidden = false;
  $('logout').hidden = false;
  await refresh();
  refreshTimer = setInterval(refresh, 3000);
  stream();
}

function setLive(on) {
  const l = $('live');
  l.className = 'live ' + (on ? 'on' : 'off');
  l.textContent = on ? 'live' : 'offline';
}

// The card state: a node the answering node holds dead, or whose API does not answer, is red.
function nodeState(node) {
  if (!node.alive) return 'DEAD';
  if (!node.reachable) return 'UNREACHABLE';
  const states = (node.status.modules || []).map((m) => m.state);
  if (states.includes('STOP')) return 'STOP';
  if (states.includes('WAIT')) return 'WAIT';
  // A mirror's node: PRIM, SECOND or ALONE (alone = serving without a copy elsewhere: amber).
  for (const mirror of ['ALONE', 'PRIM', 'SECOND']) if (states.includes(mirror)) return mirror;
  return states.length ? 'UP' : 'WAIT';
}

function colourOf(name) {
  const names = (lastCluster ? lastCluster.nodes.map((n) => n.name) : []);
  const i = names.indexOf(name);
  return i < 0 ? '#57606a' : PALETTE[i % PALETTE.length];
}

// A mirror's resync (this node brings its peer up to date): live figures with rate and ETA, or how the last one ended.
function resyncText(r) {
  const mb = (bytes) => (bytes / 1e6).toFixed(1) + ' MB';
  const figures = `${r.files_compared} files compared, ${mb(r.bytes_sent)} changed, ${mb(r.wire_bytes)} on the wire (${mb(r.wire_bytes_per_second)}/s)`;
  if (!r.active) return `last resync of ${r.target}: ${r.phase} after ${r.elapsed_seconds.toFixed(1)} s: ${figures}`;
  const eta = r.eta_seconds != null ? `, about ${Math.ceil(r.eta_seconds)} s left` : '';
  return `resynchronising ${r.target}: ${r.phase} over ${r.first_pass}: ${figures}${eta}`;
}

// The last verify this node ran: equal, or how many differences (the first ones named).
function verifyText(v) {
  const when = new Date(v.at).toLocaleTimeString();
  if (v.outcome === 'equal') return `verify at ${when}: copies equal (${v.files} files, ${(v.bytes / 1e6).toFixed(1)} MB)`;
  const listed = v.differences.length ? v.differences : v.unconfirmed;
  return `verify at ${when}: ${v.outcome}${listed.length ? ' — ' + listed.slice(0, 3).join('; ') : ''}`;
}

function renderNodes(cluster) {
  const box = $('nodes');
  box.replaceChildren();
  for (const node of cluster.nodes) {
    const state = nodeState(node);
    const card = el('div', { class: 'node', 'data-node': node.name, 'data-state': state },
      el('h3', {}, node.name + ' — ' + state),
      el('div', {}, node.api_url));
    if (!node.reachable) card.append(el('div', {}, node.alive ? 'API: ' + (node.error || 'no answer') : 'no heartbeat: ' + (node.error || '')));
    for (const m of (node.reachable ? node.status.modules : [])) {
      const owned = m.farm ? `, ${m.farm.owned_buckets}/${m.farm.buckets} buckets` : '';
      const last = (m.transitions || []).slice(-1)[0];
      const mod = el('div', { class: 'module', 'data-module': m.name },
        el('strong', {}, `${m.name}: ${m.state}`), owned,
        last ? el('div', {}, el('small', {}, last.reason)) : null,
        m.mirror && m.mirror.resync ? el('div', { class: 'resync' }, el('small', {}, resyncText(m.mirror.resync))) : null,
        m.mirror && m.mirror.verify ? el('div', { class: 'verify' }, el('small', {}, verifyText(m.mirror.verify))) : null);
      const mirrorActions = !m.mirror ? [] : m.state === 'PRIM' ? PRIM_ACTIONS : m.mirror.data === 'diverged' ? ['prim'] : [];
      for (const action of ACTIONS.concat(mirrorActions)) {
        mod.append(el('button', { 'data-action': action, onclick: () => confirmAction(node.name, m.name, action) }, action));
      }
      card.append(mod);
    }
    box.append(card);
  }
}

async function renderBuckets(cluster) {
  const me = cluster.nodes.find((n) => n.name === cluster.answered_by);
  const module = me && me.status.modules.find((m) => m.farm);
  if (!module) return;
  $('bucket-module').textContent = `module ${module.name}, ${module.farm.buckets} buckets, as ${cluster.answered_by} sees them`;
  const ranges = await api(`/api/v1/modules/${encodeURIComponent(module.name)}/buckets`);
  const count = module.farm.buckets;
  const side = Math.ceil(Math.sqrt(count));
  const canvas = $('bucket-map');
  canvas.width = side;
  canvas.height = side;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, side, side);
  const owned = new Map();
  for (const r of ranges) {
    ctx.fillStyle = r.owner ? colourOf(r.owner) : NOBODY;
    owned.set(r.owner || 'nobody', (owned.get(r.owner || 'nobody') || 0) + r.last - r.first + 1);
    for (let b = r.first; b <= r.last; b++) ctx.fillRect(b % side, Math.floor(b / side), 1, 1);
  }
  const legend = $('bucket-legend');
  legend.replaceChildren();
  for (const [owner, n] of owned) {
    const swatch = el('i');
    swatch.style.background = owner === 'nobody' ? NOBODY : colourOf(owner);
    legend.append(el('span', { 'data-owner': owner }, swatch, `${owner}: ${n}`));
  }
}

function renderHeartbeats(cluster) {
  const body = $('heartbeats').tBodies[0];
  body.replaceChildren();
  $('hb-node').textContent = cluster.answered_by;
  const membership = cluster.membership;
  if (!membership) return;
  for (const peer of membership.peers.filter((p) => p.name !== cluster.answered_by)) {
    const links = peer.links.length ? peer.links : [{ network: '-', received: 0, lost: 0, last_heard_milliseconds: null }];
    for (const link of links) {
      body.append(el('tr', { 'data-peer': peer.name },
        el('td', {}, peer.name),
        el('td', { class: peer.alive ? 'good' : 'bad' }, peer.alive ? 'alive' : 'dead'),
        el('td', {}, link.network),
        el('td', {}, link.last_heard_milliseconds === null ? 'never' : `${link.last_heard_milliseconds} ms ago`),
        el('td', {}, String(link.received)),
        el('td', { class: link.lost > 0 ? 'bad' : '' }, String(link.lost))));
    }
  }
}

function renderChecks(cluster) {
  const body = $('checks').tBodies[0];
  body.replaceChildren();
  for (const node of cluster.nodes.filter((n) => n.reachable)) {
    for (const c of node.status.checks || []) {
      body.append(el('tr', {},
        el('td', {}, node.name), el('td', {}, c.name),
        el('td', { class: c.healthy ? 'good' : 'bad' }, c.healthy ? 'healthy' : 'failing'),
        el('td', {}, c.detail), el('td', {}, String(c.failures ?? 0))));
    }
  }
}

function renderTimeline(events) {
  const list = $('timeline');
  list.replaceChildren();
  for (const e of events.slice().reverse()) {
    const at = new Date(e.at).toISOString().replace('T', ' ').slice(0, 23);
    list.append(el('li', { class: e.severity, 'data-kind': e.kind }, `${at}  ${e.node}  ${e.kind}${e.module ? ' ' + e.module : ''}  ${e.message}`));
  }
}

// One refresh at a time; a request during one runs once more right after it.
async function refresh() {
  if (!token) return;
  if (refreshing) { refreshAgain = true; return; }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      const cluster = await api('/api/v1/cluster');
      lastCluster = cluster;
      $('cluster-name').textContent = 'cluster ' + cluster.cluster;
      $('answered-by').textContent = 'via ' + cluster.answered_by + (cluster.membership ? `, view ${cluster.membership.epoch}, leader ${cluster.membership.leader}` : '');
      renderNodes(cluster);
      renderHeartbeats(cluster);
      renderChecks(cluster);
      await renderBuckets(cluster);
      renderTimeline((await api('/api/v1/cluster/events?limit=200')).events);
    } while (refreshAgain);
  } catch (e) {
    if (e.status !== 401) toast('Refresh failed: ' + e.message, true);
  } finally {
    refreshing = false;
  }
}

async function stream() {
  let after = null;
  while (token) {
    streamAbort = new AbortController();
    try {
      const response = await fetch('/api/v1/events/stream' + (after === null ? '' : '?after=' + after), {
        headers: { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' }, signal: streamAbort.signal });
      if (response.status === 401) { signOut('The token was refused (401): sign in again.'); return; }
      if (!response.ok) throw new Error('HTTP ' + response.status);
      setLive(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
          if (fields.id) after = fields.id;
          if (fields.event === 'event') refresh();
        }
      }
    } catch (e) {
      if (!token) return;
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function confirmAction(node, module, action) {
  const dialog = $('confirm');
  $('confirm-text').textContent = `${action} module ${module} on ${node}?` +
    (action === 'stop' ? ' The node leaves the farm once its connections finish.' : '') +
    (action === 'forcestop' ? ' Connections the node still serves are cut.' : '') +
    (action === 'swap' ? ' The application stops here and starts on the peer, which becomes PRIM.' : '') +
    (action === 'prim' ? ' Split brain: this node\'s copy is kept (prim --force); the other node keeps its own changes aside and is resynchronised from this one.' : '');
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'ok') return;
    toast(`${action} ${module} on ${node}…`);
    try {
      const result = await api(`/api/v1/cluster/nodes/${encodeURIComponent(node)}/modules/${encodeURIComponent(module)}/actions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ action }) });
      toast(result.message + ' (state ' + result.state + ')');
    } catch (e) {
      toast(`${action} refused: ${e.status === 403 ? 'an admin token is needed' : e.message}`, true);
    }
    refresh();
  };
  dialog.showModal();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('token').value.trim()); });
  $('logout').addEventListener('click', () => signOut(''));
  if (token) signIn(token); else signOut('');
});
