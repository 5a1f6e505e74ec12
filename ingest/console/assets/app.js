// PushGo channel console. Plain JavaScript, no build step, no dependency.
//
// Credentials live in `cred` only (this closure's memory): they go out in
// JSON bodies and request headers, never in a URL, storage or a cookie.
// Every value from the gateway is put on the page with textContent, never
// parsed as HTML.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  // The API is served beside the console: /console/ -> /, /x/console/ -> /x/.
  const base = location.pathname.replace(/console\/?(index\.html)?$/, '');
  const PAGE = 50; // things and events per page
  const HISTORY_PAGE = 20; // history items per page

  let cred = null; // {channel, password, token} while signed in
  let session = 0; // bumped at sign-in and sign-out; late answers of an old session are dropped
  let streamAbort = null;
  let lastSeq = 0; // the stream's position: resume after it
  const things = new Map();
  const events = new Map();
  const timelines = new Map(); // event id -> [{seq, at, op, status, message}] (seq 0: the snapshot's latest state)
  const timelineNotes = new Map(); // event id -> what the full timeline could not show
  const pages = { things: null, events: null }; // next cursors
  const hist = { stack: [], after: undefined, items: [], hasMore: false, nextAfter: undefined };

  // ---------------------------------------------------------------- API

  class APIError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  function headers(c, extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra);
    if (c.token) h.Authorization = 'Bearer ' + c.token;
    return h;
  }

  async function failure(res) {
    let code = '', msg = res.status + ' ' + res.statusText;
    try {
      const env = await res.json();
      code = env.error_code || '';
      msg = env.error || msg;
    } catch (_) { /* not the envelope (a proxy's page) */ }
    return new APIError(res.status, code, msg, Number(res.headers.get('Retry-After')) || 0);
  }

  // call POSTs body, with the channel's credentials, to a route and answers its data.
  async function call(c, route, body) {
    let res;
    try {
      res = await fetch(base + route, {
        method: 'POST', cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
        headers: headers(c, { 'Content-Type': 'application/json' }),
        body: JSON.stringify(Object.assign({ channel_id: c.channel, password: c.password }, body)),
      });
    } catch (e) {
      throw new APIError(0, 'network', 'the gateway cannot be reached (' + e.message + ')', 0);
    }
    if (!res.ok) throw await failure(res);
    let env;
    try {
      env = await res.json();
    } catch (e) {
      // A 200 whose body was lost (the connection cut mid-answer, a proxy's page): applied, maybe.
      throw new APIError(0, 'network', 'the answer was lost (' + e.message + ')', 0);
    }
    if (!env.success) throw new APIError(res.status, env.error_code, env.error, 0);
    return env.data;
  }

  function explain(e, c) {
    switch (e.code) {
      case 'password_mismatch': return 'Wrong password for this channel.';
      case 'channel_not_found': return 'No channel with this id on this gateway.';
      case 'invalid_channel_id': return 'A channel id is 26 letters and digits, as /channel/create answered it.';
      case 'invalid_password': return 'A channel password is 8 to 128 characters.';
      case 'authentication_failed':
        return c && c.token ? 'The gateway API token is wrong.'
          : 'This gateway is private: enter its API token (PUSHGO_TOKEN) under "Private gateway".';
      case 'network': return 'The gateway cannot be reached. Check the connection and try again.';
      case 'too_many_password_failures':
        return 'Too many wrong passwords for this channel: try again in ' + (e.retryAfter || 'a few') + ' s.';
      case 'token_not_found': return 'No token with this id in this channel (it may be revoked already).';
      case 'invalid_token_id': return 'A token id is the 24 characters between "pgo1." and the next dot.';
      case 'token_limit_reached': return 'This channel holds the most tokens allowed: revoke one first.';
    }
    const wait = e.retryAfter ? ' Try again in ' + e.retryAfter + ' s.' : '';
    return (e.message || 'request failed') + (e.code ? ' (' + e.code + ')' : '') + '.' + wait;
  }

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (k.startsWith('data-') || k.startsWith('aria-')) n.setAttribute(k, v); // attributes, not properties
      else n[k] = v;
    }
    for (const k of kids) if (k !== null && k !== undefined) n.append(k);
    return n;
  }

  function time(ms) {
    if (!ms) return el('span', { text: '—' });
    const d = new Date(ms);
    // Today's times need no date; the full one is in the tooltip.
    const today = d.toDateString() === new Date().toDateString();
    return el('time', { dateTime: d.toISOString(), title: d.toLocaleString(),
      text: today ? d.toLocaleTimeString() : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' }) });
  }

  function value(v) { return typeof v === 'string' ? v : JSON.stringify(v); }

  function attrList(attrs) {
    const keys = Object.keys(attrs || {}).sort();
    if (!keys.length) return null;
    const dl = el('dl', { class: 'attrs' });
    for (const k of keys) dl.append(el('dt', { text: k }), el('dd', { 'data-attr': k, text: value(attrs[k]) }));
    return dl;
  }

  let announceTimer = 0, pending = [];
  function announce(text) {
    pending.push(text);
    if (announceTimer) return;
    announceTimer = setTimeout(() => {
      $('announce').textContent = pending.length > 3 ? pending.length + ' updates' : pending.join('. ');
      pending = [];
      announceTimer = 0;
    }, 1000);
  }

  function setConn(state, text) {
    const n = $('conn');
    n.dataset.state = state;
    n.textContent = text || { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', 'signed-out': 'Signed out', failed: 'Stopped' }[state];
  }

  // ---------------------------------------------------------------- Things and Events

  function thingCard(t) {
    const state = t.state || 'active';
    const meta = el('p', { class: 'meta' },
      el('span', { class: 'badge st-' + state, 'data-field': 'state', text: state }),
      'last seen ', time(t.observed_at), ' · updated ', time(t.updated_at), ' · v' + t.version);
    const extra = [];
    if (t.location_value) extra.push(el('p', { class: 'meta', text: 'location: ' + t.location_value }));
    if (t.tags && t.tags.length) extra.push(el('p', { class: 'meta', text: 'tags: ' + t.tags.join(', ') }));
    return el('li', { class: 'card', id: 'thing-' + t.thing_id, 'data-id': t.thing_id, 'data-version': t.version },
      el('h3', { text: t.title || t.thing_id }), meta, ...extra, attrList(t.attrs),
      el('p', { class: 'meta mono', text: t.thing_id }));
  }

  function eventCard(ev) {
    const state = (ev.state || 'ONGOING').toLowerCase();
    const tl = el('ol', { class: 'timeline', 'aria-label': 'Timeline' });
    const entries = timelines.get(ev.event_id) || [];
    for (const u of entries) {
      tl.append(el('li', { 'data-seq': u.seq }, time(u.at), ' ', el('span', { class: 'mono', text: u.op }),
        u.status ? ' → ' + u.status : '', u.message ? ': ' + u.message : ''));
    }
    let more = null;
    const note = timelineNotes.get(ev.event_id);
    if (note !== undefined) {
      if (note) more = el('p', { class: 'meta', text: note });
    } else if (entries.filter((u) => u.seq).length < ev.version) {
      more = el('button', { type: 'button', class: 'quiet timeline-all', text: 'Show all ' + ev.version + ' operations' });
      more.addEventListener('click', () => fullTimeline(ev.event_id, more));
    }
    return el('li', { class: 'card', id: 'event-' + ev.event_id, 'data-id': ev.event_id, 'data-version': ev.version },
      el('h3', { text: ev.title }),
      el('p', { class: 'meta' },
        el('span', { class: 'badge st-' + state, 'data-field': 'state', text: ev.state }),
        el('span', { class: 'badge sev-' + ev.severity, 'data-field': 'severity', text: ev.severity })),
      el('p', {}, el('strong', { 'data-field': 'status', text: ev.status }), ev.message ? ': ' : '',
        el('span', { 'data-field': 'message', text: ev.message || '' })),
      el('p', { class: 'meta' }, 'started ', time(ev.started_at), ' · updated ', time(ev.updated_at),
        ev.ended_at ? ' · ended ' : '', ev.ended_at ? time(ev.ended_at) : null, ' · ' + ev.version + ' operations'),
      attrList(ev.attrs), tl, more, el('p', { class: 'meta mono', text: ev.event_id }));
  }

  function put(kind, snap, flash) {
    const map = kind === 'thing' ? things : events;
    const id = snap[kind + '_id'];
    const prev = map.get(id);
    if (prev && prev.version > snap.version) return; // an older answer overtaken by a newer one
    map.set(id, snap);
    if (kind === 'event' && !timelines.has(id)) {
      timelines.set(id, [{ seq: 0, at: snap.updated_at, op: 'latest', status: snap.status, message: snap.message }]);
    }
    const card = kind === 'thing' ? thingCard(snap) : eventCard(snap);
    const old = $(kind + '-' + id);
    if (old) {
      old.replaceWith(card);
      if (flash && (!prev || prev.version !== snap.version)) card.classList.add('flash');
    } else {
      $(kind + 's-list').append(card);
    }
    counts();
  }

  function counts() {
    $('things-count').textContent = '(' + things.size + ')';
    $('events-count').textContent = '(' + events.size + ')';
    $('things-empty').hidden = things.size > 0;
    $('events-empty').hidden = events.size > 0;
  }

  async function loadList(kind, more) {
    const s = session;
    const body = { limit: PAGE, state: kind === 'thing' ? 'active' : 'ONGOING' };
    if (more && pages[kind + 's']) body.cursor = pages[kind + 's'];
    const data = await call(cred, 'channel/' + kind + 's', body);
    if (s !== session) return 0;
    let top = 0;
    for (const it of data.items) { put(kind, it, false); top = Math.max(top, it.last_seq || 0); }
    pages[kind + 's'] = data.has_more ? data.next_cursor : null;
    $(kind + 's-more').hidden = !data.has_more;
    return top;
  }

  // refresh queue: one read per changed entity, however many operations arrived for it.
  const dirty = new Map();
  let draining = false;
  function refresh(kind, id) {
    dirty.set(kind + ':' + id, [kind, id]);
    if (!draining) drain();
  }
  async function drain() {
    draining = true;
    const s = session;
    try {
      while (dirty.size && s === session) {
        const [key, [kind, id]] = dirty.entries().next().value;
        dirty.delete(key);
        try {
          const snap = await call(cred, kind + '/get', { [kind + '_id']: id });
          if (s !== session) return;
          // The lists show ongoing events and active things: one not shown
          // that is closed (archived, deleted) by now is not added. At
          // sign-in the stream may replay a long stretch of history (its
          // start is the newest operation the lists reflect), and each
          // closed event of it was listed under Open events.
          const open = kind === 'thing' ? snap.state === 'active' : snap.state === 'ONGOING';
          if (!open && !(kind === 'thing' ? things : events).has(id)) continue;
          put(kind, snap, true);
          announce((kind === 'thing' ? 'Thing ' : 'Event ') + (snap.title || id) + ' ' + (kind === 'event' ? snap.status : 'updated'));
        } catch (e) {
          if (s === session) $('conn').title = 'Last refresh failed: ' + explain(e, cred);
        }
      }
    } finally {
      draining = false;
      if (dirty.size && cred) drain();
    }
  }

  // fullTimeline reads an event's earlier operations from the channel's
  // history (the gateway has no per-event history): the event operations
  // up to the event's last one, at most TIMELINE_SCAN of them, in at most
  // TIMELINE_PAGES pages.
  const TIMELINE_SCAN = 20000, TIMELINE_PAGES = 200;
  async function fullTimeline(id, button) {
    const ev = events.get(id);
    if (!ev) return;
    const s = session;
    button.disabled = true;
    button.textContent = 'Reading the history…';
    const found = [];
    let after, read = 0, complete = false;
    try {
      // A page that passed over other kinds may hold no event: the
      // pages are bounded too.
      for (let pages = 0; read < TIMELINE_SCAN && pages < TIMELINE_PAGES; pages++) {
        const body = { limit: 1000, kinds: ['event'] };
        if (after !== undefined) body.after = after;
        const d = await call(cred, 'channel/history', body);
        if (s !== session) return;
        read += d.items.length;
        for (const it of d.items) {
          if (it.entity_id !== id) continue;
          const p = it.payload || {};
          found.push({ seq: it.seq, at: it.accepted_at, op: it.op, status: p.status, message: p.message });
        }
        // next_after, not the last item: a page that passed over many
        // items of other kinds may hold none and still have more.
        if (!d.has_more || d.next_after >= ev.last_seq) { complete = true; break; }
        after = d.next_after;
      }
    } catch (e) {
      if (s !== session) return;
      button.disabled = false;
      button.textContent = 'Could not read the history: ' + explain(e, cred) + ' Retry';
      return;
    }
    const seen = new Set(found.map((u) => u.seq));
    const live = (timelines.get(id) || []).filter((u) => u.seq && !seen.has(u.seq));
    const all = found.concat(live).sort((a, b) => a.seq - b.seq);
    timelines.set(id, all);
    const missing = (events.get(id) || ev).version - all.length;
    timelineNotes.set(id, missing <= 0 ? '' : complete
      ? missing + ' earlier operations are past the retained history.'
      : 'Stopped after reading ' + read + ' operations of the history; ' + missing + ' earlier operations not shown.');
    put('event', events.get(id) || ev, false);
  }

  // ---------------------------------------------------------------- History

  function summary(it) {
    const p = it.payload || {};
    const parts = [];
    const known = (it.entity_type === 'thing' ? things : events).get(it.entity_id);
    if (p.title || (known && known.title)) parts.push(p.title || known.title);
    if (p.status) parts.push('→ ' + p.status);
    if (p.message) parts.push(p.message);
    if (p.body) parts.push(p.body);
    if (p.attrs && it.entity_type === 'thing') parts.push(Object.keys(p.attrs).map((k) => k + '=' + value(p.attrs[k])).join(', '));
    return parts.join(' · ') || it.entity_id;
  }

  function historyRow(it) {
    return el('li', { 'data-seq': it.seq, 'data-op-id': it.op_id },
      el('span', { class: 'seq', text: '#' + it.seq }),
      el('span', { class: 'op', text: it.op }),
      el('span', { class: 'what', text: summary(it) }),
      time(it.accepted_at));
  }

  function renderHistory() {
    const list = $('hist-list');
    list.replaceChildren(...hist.items.map(historyRow));
    $('hist-empty').hidden = hist.items.length > 0;
    $('hist-prev').disabled = hist.stack.length === 0;
    $('hist-next').disabled = !hist.hasMore;
    $('hist-page').textContent = 'Page ' + (hist.stack.length + 1) + (hist.hasMore ? '' : ' (latest)');
  }

  async function loadHistory(after) {
    const s = session;
    const body = { limit: HISTORY_PAGE };
    if (after !== undefined) body.after = after;
    const data = await call(cred, 'channel/history', body);
    if (s !== session) return;
    hist.after = after;
    hist.items = data.items;
    hist.hasMore = data.has_more;
    hist.nextAfter = data.next_after;
    renderHistory();
  }

  async function pageHistory(dir) {
    const buttons = [$('hist-prev'), $('hist-next')];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      if (dir > 0 && hist.hasMore) {
        // next_after: a page that passed over expired messages may hold
        // none and still have more.
        const after = hist.nextAfter;
        hist.stack.push(hist.after);
        try { await loadHistory(after); } catch (e) { hist.stack.pop(); throw e; }
      } else if (dir < 0 && hist.stack.length) {
        const prev = hist.stack.pop();
        try { await loadHistory(prev); } catch (e) { hist.stack.push(prev); throw e; }
      } else {
        await loadHistory(hist.after);
      }
    } catch (e) {
      $('hist-page').textContent = 'Could not load: ' + explain(e, cred);
    } finally {
      if (cred) renderHistoryButtons();
    }
  }
  function renderHistoryButtons() {
    $('hist-prev').disabled = hist.stack.length === 0;
    $('hist-next').disabled = !hist.hasMore;
  }

  // a live operation joins the last page while it has room; past that, the page says there is more.
  function historyLive(it) {
    if (hist.hasMore) return;
    const last = hist.items[hist.items.length - 1];
    if (last && last.seq >= it.seq) return;
    if (hist.items.length < HISTORY_PAGE) {
      hist.items.push(it);
      $('hist-list').append(historyRow(it));
      $('hist-empty').hidden = true;
    } else {
      hist.hasMore = true;
      $('hist-page').textContent = 'Page ' + (hist.stack.length + 1);
      renderHistoryButtons();
    }
  }

  // ---------------------------------------------------------------- The live stream

  function handleOp(it) {
    if (it.entity_type === 'thing' || it.entity_type === 'event') {
      if (it.entity_type === 'event') {
        const p = it.payload || {};
        const tl = timelines.get(it.entity_id) || [];
        if (!tl.some((u) => u.seq === it.seq)) tl.push({ seq: it.seq, at: it.accepted_at, op: it.op, status: p.status, message: p.message });
        timelines.set(it.entity_id, tl);
      }
      refresh(it.entity_type, it.entity_id);
    } else if (it.entity_type === 'message') {
      announce('Message ' + ((it.payload && it.payload.title) || ''));
    }
    historyLive(it);
  }

  function handleBlock(block) {
    let id = '', event = '', data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('id:')) id = line.slice(3).trim();
      else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
    }
    if (!data) return; // a keep-alive or a comment
    if (event === 'gap') {
      // The log no longer holds what came after lastSeq and before
      // first_seq (its retention): resume past it, said once.
      try {
        const g = JSON.parse(data);
        if (g.first_seq - 1 > lastSeq) {
          lastSeq = g.first_seq - 1;
          announce('Some operations aged out of the gateway\'s log while disconnected');
        }
      } catch (e) { console.warn('console: bad gap event', e); }
      return;
    }
    const seq = Number(id);
    if (seq && seq <= lastSeq) return; // replayed after a resume
    try { handleOp(JSON.parse(data)); } catch (e) { console.warn('console: bad stream item', e); }
    if (seq) lastSeq = seq;
  }

  function pause(ms, s) {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); removeEventListener('online', done); resolve(); };
      const t = setTimeout(done, ms);
      addEventListener('online', done);
      if (s !== session) done();
    });
  }

  // follow reads GET /channel/stream with fetch (EventSource cannot send the
  // credentials in headers) and resumes after any drop with Last-Event-ID.
  async function follow(s, onFirstLive) {
    let attempt = 0;
    while (s === session) {
      const ctl = new AbortController();
      streamAbort = ctl;
      let watchdog = 0, retryAfter = 0;
      setConn(attempt ? 'reconnecting' : 'connecting');
      try {
        const h = headers(cred, { Accept: 'text/event-stream', 'X-PushGo-Channel': cred.channel, 'X-PushGo-Password': cred.password });
        if (lastSeq) h['Last-Event-ID'] = String(lastSeq);
        const res = await fetch(base + 'channel/stream', { headers: h, signal: ctl.signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
        if (!res.ok) throw await failure(res);
        setConn('live');
        if (onFirstLive) { const f = onFirstLive; onFirstLive = null; f(); }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        // The gateway sends a keep-alive every 15 s: silence for 45 s is a dead connection.
        const kick = () => { clearTimeout(watchdog); watchdog = setTimeout(() => ctl.abort(), 45000); };
        kick();
        let buf = '';
        for (;;) {
          const { value: chunk, done } = await reader.read();
          if (done || s !== session) break;
          kick();
          buf += chunk.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0 && s === session) {
            const block = buf.slice(0, i);
            handleBlock(block);
            // The gateway's closing comment is no connection: answered
            // at once with it (its log unavailable), the back-off grows.
            if (!block.startsWith(': stream ended')) attempt = 0;
            buf = buf.slice(i + 2);
          }
        }
      } catch (e) {
        if (s !== session) return;
        if (e instanceof APIError && [400, 401, 403, 404].includes(e.status)) {
          setConn('failed', 'Stopped: ' + explain(e, cred));
          return;
        }
        retryAfter = e.retryAfter || 0;
      } finally {
        clearTimeout(watchdog);
      }
      if (s !== session) return;
      attempt++;
      const delay = retryAfter ? retryAfter * 1000 : Math.min(15000, 250 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() / 2);
      setConn('reconnecting', 'Reconnecting in ' + Math.max(1, Math.round(delay / 1000)) + ' s…');
      await pause(delay, s);
    }
  }

  // ---------------------------------------------------------------- Sign in and out

  async function signIn(ev) {
    ev.preventDefault();
    const err = $('signin-error');
    const c = { channel: $('in-channel').value.trim().toUpperCase(), password: $('in-password').value, token: $('in-token').value.trim() };
    if (!c.channel || !c.password) {
      err.textContent = !c.channel ? 'Enter the channel id.' : 'Enter the channel password.';
      $(!c.channel ? 'in-channel' : 'in-password').focus();
      return;
    }
    const btn = $('signin-submit');
    btn.disabled = true;
    err.textContent = '';
    try {
      cred = c;
      const s = ++session;
      const seqs = await Promise.all([loadList('thing'), loadList('event'), loadHistory(undefined).then(() => 0)]);
      if (s !== session) return;
      // The stream starts after the newest operation the lists reflect;
      // once it is live the lists are read again, so that an operation
      // that landed between the reads is not missed.
      const newest = hist.hasMore ? 0 : (hist.items.length ? hist.items[hist.items.length - 1].seq : 0);
      lastSeq = Math.max(newest, ...seqs);
      $('in-password').value = '';
      $('in-token').value = '';
      $('signin').hidden = true;
      $('app').hidden = false;
      $('who').hidden = false;
      $('who-id').textContent = c.channel;
      $('signout').hidden = false;
      counts();
      $('things-h').focus();
      follow(s, () => { loadList('thing').catch(() => {}); loadList('event').catch(() => {}); });
      loadTokens();
    } catch (e) {
      reset();
      err.textContent = explain(e, c);
      if (e.code === 'authentication_failed') { $('private-box').open = true; $('in-token').focus(); }
      else if (e.code === 'password_mismatch' || e.code === 'invalid_password') $('in-password').select();
      else $('in-channel').focus();
    } finally {
      btn.disabled = false;
    }
  }

  // reset forgets the credentials and everything the channel showed.
  function reset() {
    session++;
    cred = null;
    if (streamAbort) streamAbort.abort();
    streamAbort = null;
    lastSeq = 0;
    things.clear(); events.clear(); timelines.clear(); timelineNotes.clear(); dirty.clear();
    pages.things = pages.events = null;
    Object.assign(hist, { stack: [], after: undefined, items: [], hasMore: false });
    for (const id of ['things-list', 'events-list', 'hist-list', 'token-list']) $(id).replaceChildren();
    for (const id of ['send-result', 'token-result', 'announce']) $(id).textContent = '';
    $('tokens-empty').hidden = true;
    hideToken();
    setConn('signed-out');
  }

  function signOut() {
    reset();
    $('app').hidden = true;
    $('who').hidden = true;
    $('signout').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = '';
    $('in-channel').focus();
  }

  // ---------------------------------------------------------------- Send

  // unconfirmed is the message whose answer did not come (the connection
  // lost, a 5xx): the gateway may have stored it, so sending the same one
  // again reuses its op_id and the gateway applies it once, where a new
  // op_id pushed it to every device twice.
  let unconfirmed = null;

  function opIdFor(key) {
    if (unconfirmed && unconfirmed.key === key) return unconfirmed.opId;
    const b = crypto.getRandomValues(new Uint8Array(16));
    return 'console-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  // mayHaveApplied says whether a failed write may still have been applied.
  function mayHaveApplied(e) {
    return e.status === 0 || e.status >= 500;
  }

  async function send(ev) {
    ev.preventDefault();
    const out = $('send-result');
    const title = $('msg-title').value.trim();
    if (!title) { out.textContent = 'A message needs a title.'; $('msg-title').focus(); return; }
    const body = { title, severity: $('msg-severity').value };
    const text = $('msg-body').value;
    if (text.trim()) body.body = text;
    const key = JSON.stringify([cred.channel, body]);
    const opId = opIdFor(key);
    body.op_id = opId;
    const s = session;
    out.textContent = 'Sending…';
    out.removeAttribute('data-message-id');
    try {
      const d = await call(cred, 'message', body);
      if (s !== session) return;
      unconfirmed = null;
      out.textContent = 'Accepted: message ' + d.message_id + ' (op ' + d.op_id + ').';
      out.dataset.messageId = d.message_id;
      $('msg-title').value = '';
      $('msg-body').value = '';
    } catch (e) {
      if (s !== session) return;
      if (mayHaveApplied(e)) {
        unconfirmed = { key, opId };
        out.textContent = 'Not confirmed: ' + explain(e, cred) + ' The gateway may have stored it: Send again sends it once (op ' + opId + ').';
      } else {
        // Refused this time (a 429, say) after an attempt that may have
        // been stored: the next Send keeps that attempt's op_id.
        if (!unconfirmed || unconfirmed.key !== key) unconfirmed = null;
        out.textContent = 'Not sent: ' + explain(e, cred);
      }
    }
  }

  // ---------------------------------------------------------------- Tokens

  function hideToken() {
    $('token-value').value = '';
    $('token-created').hidden = true;
  }

  async function createToken(ev) {
    ev.preventDefault();
    const out = $('token-result');
    const name = $('tok-name').value.trim();
    const scopes = [$('tok-ingest'), $('tok-read')].filter((b) => b.checked).map((b) => b.value);
    if (!name) { out.textContent = 'A token needs a name.'; $('tok-name').focus(); return; }
    if (!scopes.length) { out.textContent = 'Pick at least one scope.'; return; }
    const s = session;
    try {
      const d = await call(cred, 'channel/token/create', { name, scopes });
      if (s !== session) return;
      $('token-value').value = d.token;
      $('token-created-name').textContent = '“' + d.name + '”';
      $('token-created').hidden = false;
      $('token-created').focus();
      $('tok-name').value = '';
      out.textContent = 'Token ' + d.token_id + ' created.';
      putTokenRow(tokenRow(d));
    } catch (e) {
      if (s !== session) return;
      if (mayHaveApplied(e)) {
        // No op_id on this route: not sent again. The list shows whether it was made.
        out.textContent = 'Not confirmed: ' + explain(e, cred) + ' The gateway may have created the token (its secret is lost if so): check the list below and revoke a token you do not know.';
        loadTokens();
      } else {
        out.textContent = 'Not created: ' + explain(e, cred);
      }
    }
  }

  // loadTokens lists the channel's tokens (/channel/token/list), oldest
  // first, replacing what the list showed.
  async function loadTokens() {
    const s = session;
    const c = cred;
    try {
      const d = await call(c, 'channel/token/list', {});
      if (s !== session) return;
      $('token-list').replaceChildren(...d.tokens.map(tokenRow));
      $('tokens-empty').hidden = d.tokens.length > 0;
      if (d.truncated) $('token-result').textContent = 'Only the oldest ' + d.tokens.length + ' tokens are listed.';
    } catch (e) {
      if (s === session) $('token-result').textContent = 'Tokens not listed: ' + explain(e, c);
    }
  }

  // putTokenRow shows li in place of the row of the same token, or last.
  function putTokenRow(li) {
    const old = $(li.id);
    if (old) old.replaceWith(li);
    else $('token-list').append(li);
    $('tokens-empty').hidden = true;
  }

  function tokenRow(d) {
    const btn = el('button', { type: 'button', text: 'Revoke' });
    btn.setAttribute('aria-label', 'Revoke token ' + d.name);
    let armed = 0;
    btn.addEventListener('click', async () => {
      if (!armed) { // a second click confirms: revoking cannot be undone
        btn.textContent = 'Confirm revoke';
        armed = setTimeout(() => { armed = 0; btn.textContent = 'Revoke'; }, 5000);
        return;
      }
      clearTimeout(armed);
      btn.disabled = true;
      if (await revoke(d.token_id)) li.replaceWith(revokedRow(d));
      else { armed = 0; btn.textContent = 'Revoke'; btn.disabled = false; }
    });
    const li = el('li', { id: 'token-' + d.token_id, 'data-token-id': d.token_id },
      el('strong', { text: d.name }), el('code', { text: d.token_id }),
      el('span', { class: 'meta', 'data-field': 'scopes', text: d.scopes.join(', ') }), time(d.created_at), btn);
    return li;
  }

  function revokedRow(d) {
    return el('li', { id: 'token-' + d.token_id, 'data-token-id': d.token_id, 'data-revoked': 'true', class: 'revoked' },
      el('strong', { text: d.name }), el('code', { text: d.token_id }), el('span', { text: 'revoked' }));
  }

  async function revoke(id) {
    const out = $('token-result');
    const s = session;
    try {
      await call(cred, 'channel/token/revoke', { token_id: id });
      if (s === session) out.textContent = 'Token ' + id + ' revoked.';
      return s === session;
    } catch (e) {
      if (s === session) out.textContent = 'Not revoked: ' + explain(e, cred);
      return false;
    }
  }

  async function copyToken() {
    const input = $('token-value');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (_) { // no clipboard API outside a secure context: the selection still works
      input.select();
      document.execCommand('copy');
    }
    $('token-copy').textContent = 'Copied';
    setTimeout(() => { $('token-copy').textContent = 'Copy'; }, 2000);
  }

  // ---------------------------------------------------------------- Wiring

  function wire() {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', signOut);
    $('send-form').addEventListener('submit', send);
    $('token-form').addEventListener('submit', createToken);
    $('tokens-reload').addEventListener('click', () => { $('token-result').textContent = ''; loadTokens(); });
    $('token-copy').addEventListener('click', copyToken);
    $('token-done').addEventListener('click', hideToken);
    $('hist-prev').addEventListener('click', () => pageHistory(-1));
    $('hist-next').addEventListener('click', () => pageHistory(1));
    $('hist-reload').addEventListener('click', () => pageHistory(0));
    $('things-more').addEventListener('click', () => loadList('thing', true).catch((e) => { $('things-empty').hidden = false; $('things-empty').textContent = explain(e, cred); }));
    $('events-more').addEventListener('click', () => loadList('event', true).catch((e) => { $('events-empty').hidden = false; $('events-empty').textContent = explain(e, cred); }));
    for (const h of ['things-h', 'events-h']) $(h).tabIndex = -1;
    setConn('signed-out');
    document.documentElement.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', wire);
  else wire();
})();
