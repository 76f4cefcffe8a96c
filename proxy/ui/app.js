/* profgate profile viewer (served at <pprof.path>/ui/ by proxy/pg_ui.c).
 *
 * Lists the services from services.json; for each profile kind a debug=1 text link and a
 * "View" action. View fetches the profile itself (so that it can send the pprof bearer token,
 * show a countdown while a CPU profile is collected, and put the gateway's or agent's error
 * in words), then hands the bytes to speedscope (served by the gateway under speedscope/) as
 * a same-origin object URL: speedscope/index.html#profileURL=blob:... .
 * The token is kept in sessionStorage and only ever sent as "Authorization: Bearer": never in
 * a URL. Nothing here talks to any host but the gateway. */
'use strict';

(function () {
  const TOKEN_KEY = 'profgate.pprof.token';
  const KINDS = {
    profile: { label: 'CPU', what: 'on-CPU time of every thread', text: [], opts: 'cpu' },
    heap: { label: 'Heap', what: 'sampled allocations: live or all since start',
            text: ['debug=1'], opts: 'heap' },
    allocs: { label: 'Allocs', what: 'every sampled allocation (allocated bytes)',
              text: ['debug=1'], opts: 'delta' },
    goroutine: { label: 'Threads', what: 'stacks of all threads (goroutine)',
                 text: ['debug=1', 'debug=2'], opts: null },
    threadcreate: { label: 'Thread creation', what: 'where threads were created',
                    text: ['debug=1'], opts: null },
    block: { label: 'Block', what: 'time spent waiting on locks and condition variables',
             text: ['debug=1'], opts: 'delta' },
    mutex: { label: 'Mutex', what: 'time contended locks were held', text: ['debug=1'],
             opts: 'delta' },
  };

  const $ = (id) => document.getElementById(id);
  let services = null;     /* the parsed services.json */
  let inflight = null;     /* { ctl: AbortController, timer } of the fetch in progress */
  let blobURL = null;      /* the profile speedscope shows */
  let viewCount = 0;

  /* ---------------- token ---------------- */

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function authHeaders() {
    const t = token();
    return t ? { Authorization: 'Bearer ' + t } : {};
  }
  function showToken(askFor) {
    const has = token() !== '';
    $('token-state').textContent = has ? 'token set (this tab only)' : 'no token';
    $('token-forget').hidden = !has;
    $('token-form').hidden = !askFor;
    $('token-edit').hidden = askFor;
    if (askFor) $('token-input').focus();
  }
  $('token-edit').addEventListener('click', () => showToken(true));
  $('token-forget').addEventListener('click', () => {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
    showToken(false);
    loadServices();
  });
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token-input').value.trim();
    $('token-input').value = '';
    try { sessionStorage.setItem(TOKEN_KEY, v); } catch (e) { /* private mode */ }
    showToken(false);
    loadServices();
  });

  /* ---------------- small helpers ---------------- */

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function notice(nodes) {
    const n = $('notice');
    n.replaceChildren(...(nodes || []));
    n.hidden = !nodes;
  }
  function code(s) { return el('code', null, s); }

  /* An HTTP error from the gateway or the agent, in words. body is the response text. */
  function describe(status, statusText, body, what) {
    body = (body || '').trim().replace(/\s+/g, ' ');
    if (body.length > 400) body = body.slice(0, 400) + '…';
    const tail = body ? ': ' + body : '';
    if (status === 401)
      return `${what}: the gateway wants the pprof token (401${tail}). Set it at the top right.`;
    if (status === 403)
      return `${what}: refused by the gateway's pprof policy (403${tail}).`;
    if (status === 404 && /unknown profile/i.test(body))
      return `${what}: this agent does not provide that profile kind (404${tail}).`;
    if (status === 409 || /already in use|already running/i.test(body))
      return `${what}: another profile is already being collected from this service; ` +
             `try again when it is done (${status}${tail}).`;
    if (status === 400)
      return `${what}: the request was refused (400${tail}).`;
    if (status === 502)
      return `${what}: the gateway could not reach the service's agent (502${tail}).`;
    if (status === 504)
      return `${what}: the agent did not answer in time (504${tail}).`;
    return `${what}: ${status} ${statusText || ''}${tail}`.replace(/ +:/, ':');
  }

  /* ---------------- status line ---------------- */

  function setStatus(state, text, progress) {
    const s = $('status');
    s.hidden = false;
    s.dataset.state = state;
    s.classList.toggle('error', state === 'error');
    s.classList.toggle('ok', state === 'done');
    $('status-text').textContent = text;
    $('status-cancel').hidden = state !== 'waiting';
    const bar = $('status-bar');
    bar.hidden = state !== 'waiting';
    bar.classList.toggle('indeterminate', progress === null || progress === undefined);
    $('status-fill').style.width = progress != null ? Math.round(progress * 100) + '%' : '';
  }
  function stopInflight() {
    if (!inflight) return;
    clearInterval(inflight.timer);
    inflight.ctl.abort();
    inflight = null;
  }
  $('status-cancel').addEventListener('click', () => {
    stopInflight();
    setStatus('error', 'Cancelled.');
  });

  /* ---------------- viewer ---------------- */

  function closeViewer() {
    $('viewer').hidden = true;
    $('viewer-frame').src = 'about:blank';
    if (blobURL) URL.revokeObjectURL(blobURL);
    blobURL = null;
  }
  $('viewer-close').addEventListener('click', closeViewer);

  function showProfile(bytes, title, filename) {
    closeViewer();
    blobURL = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    $('viewer-title').textContent = title;
    $('viewer-download').href = blobURL;
    $('viewer-download').download = filename;
    $('viewer-download').hidden = false;
    $('viewer-text').hidden = true;
    const frame = $('viewer-frame');
    if (services && services.viewer && !services.viewer.installed) {
      frame.hidden = true;
      $('viewer-open').hidden = true;
      $('viewer-text').hidden = false;
      $('viewer-text').textContent =
        'The profile was collected, but the speedscope viewer is not installed on this ' +
        'gateway, so it cannot be shown here. To install it, ' + services.viewer.hint + '.\n' +
        'Use "download .pb.gz" above and open it with `go tool pprof -http=: FILE`.';
    } else {
      /* a new query each time: a hash-only change would not reload speedscope */
      const src = `speedscope/index.html?v=${++viewCount}#profileURL=` +
                  encodeURIComponent(blobURL) + '&title=' + encodeURIComponent(title);
      frame.hidden = false;
      frame.src = src;
      $('viewer-open').hidden = false;
      $('viewer-open').href = src;
    }
    $('viewer').hidden = false;
    $('viewer').scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  function showText(text, title) {
    closeViewer();
    $('viewer-title').textContent = title;
    $('viewer-frame').hidden = true;
    $('viewer-open').hidden = true;
    $('viewer-download').hidden = true;
    $('viewer-text').hidden = false;
    $('viewer-text').textContent = text;
    $('viewer').hidden = false;
    $('viewer').scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  /* ---------------- fetching a profile ---------------- */

  async function fetchProfile(svc, kind, params, label, asText) {
    stopInflight();
    const qs = new URLSearchParams(params).toString();
    const url = svc.profiles[kind] + (qs ? '?' + qs : '');
    const secs = Number(params.seconds || 0);
    const what = `${svc.name}: ${label}`;
    const ctl = new AbortController();
    const t0 = performance.now();
    const tick = () => {
      const el = (performance.now() - t0) / 1000;
      if (secs > 0 && el < secs) {
        const left = Math.ceil(secs - el);
        setStatus('waiting', `Collecting ${what} — ${secs} s window, ${left} s left…`, el / secs);
      } else if (secs > 0) {
        setStatus('waiting', `Collected ${what} (${secs} s); waiting for the agent to send it…`,
                  null);
      } else {
        setStatus('waiting', `Fetching ${what}…`, null);
      }
    };
    inflight = { ctl, timer: setInterval(tick, 250) };
    const mine = inflight;
    tick();
    let resp, body;
    try {
      resp = await fetch(url, { headers: authHeaders(), signal: ctl.signal, cache: 'no-store' });
      body = asText ? await resp.text() : await resp.arrayBuffer();
    } catch (e) {
      if (inflight === mine) {
        stopInflight();
        setStatus('error', `${what}: the gateway did not answer (${e.message || e}).`);
      }
      return;
    }
    if (inflight !== mine) return; /* cancelled or replaced meanwhile */
    stopInflight();
    if (!resp.ok) {
      const text = asText ? body : new TextDecoder().decode(body);
      setStatus('error', describe(resp.status, resp.statusText, text, what));
      if (resp.status === 401) showToken(true);
      return;
    }
    const took = ((performance.now() - t0) / 1000).toFixed(1);
    if (asText) {
      setStatus('done', `${what}: ${body.length} characters in ${took} s.`);
      showText(body, `${svc.name} · ${label}`);
      return;
    }
    if (body.byteLength === 0) {
      setStatus('error', `${what}: the agent sent an empty profile.`);
      return;
    }
    /* a gzipped profile with no sample is ~100-200 bytes: say so rather than show a blank */
    const tiny = body.byteLength < 256 ? ' It is very small: it may hold no samples yet (is the ' +
      'service busy, is this profile kind switched on? Its debug=1 text view tells).' : '';
    setStatus('done', `${what}: ${body.byteLength} bytes in ${took} s.${tiny}`);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    showProfile(body, `${svc.name} · ${label}`, `${svc.name}-${kind}-${stamp}.pb.gz`);
  }

  /* ---------------- the services table ---------------- */

  function optionsFor(svc, kind, spec) {
    /* returns [cell content, () => ({ params, kind, label })] */
    const k = KINDS[kind];
    if (spec === 'cpu') {
      const max = svc.max_seconds || 60;
      const input = el('input', { type: 'number', min: 1, max, value: Math.min(10, max),
                                  'data-seconds': '', 'aria-label': 'seconds' });
      return [el('label', null, 'seconds ', input),
              () => ({ kind, params: { seconds: String(Math.max(1, Math.min(max,
                         Math.round(Number(input.value) || 1)))) },
                       label: `CPU profile, ${input.value} s` })];
    }
    const delta = () => {
      const sel = el('select', { 'aria-label': 'window', 'data-window': '' },
                     el('option', { value: '' }, 'since start'),
                     el('option', { value: '10' }, 'last 10 s'),
                     el('option', { value: '30' }, 'last 30 s'));
      return sel;
    };
    if (spec === 'heap') {
      const which = el('select', { 'aria-label': 'heap view', 'data-heap': '' },
                       el('option', { value: 'heap' }, 'in use'),
                       el('option', { value: 'allocs' }, 'allocated'));
      const win = delta();
      return [el('span', null, which, ' ', win),
              () => ({ kind: which.value, params: win.value ? { seconds: win.value } : {},
                       label: `heap (${which.value === 'heap' ? 'in use' : 'allocated'}` +
                              (win.value ? `, last ${win.value} s)` : ')') })];
    }
    if (spec === 'delta') {
      const win = delta();
      return [win, () => ({ kind, params: win.value ? { seconds: win.value } : {},
                            label: k.label.toLowerCase() + ' profile' +
                                   (win.value ? ` (last ${win.value} s)` : '') })];
    }
    return [el('span', { class: 'muted' }, '—'),
            () => ({ kind, params: {}, label: k.label.toLowerCase() + ' profile' })];
  }

  function textLink(svc, kind, q) {
    const href = svc.profiles[kind] + '?' + q;
    return el('a', {
      href,
      onclick: (ev) => {
        /* fetch it here, so the token goes along; a modified click opens it plainly */
        if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
        ev.preventDefault();
        fetchProfile(svc, kind, Object.fromEntries(new URLSearchParams(q)),
                     `${kind} (${q})`, true);
      },
    }, q);
  }

  function renderService(svc) {
    const rows = [];
    for (const kind of Object.keys(KINDS)) {
      if (!svc.profiles[kind]) continue;
      const k = KINDS[kind];
      const [opts, choose] = optionsFor(svc, kind, k.opts);
      const view = el('button', {
        type: 'button', 'data-service': svc.name, 'data-kind': kind,
        onclick: () => {
          const c = choose();
          fetchProfile(svc, c.kind, c.params, c.label, false);
        },
      }, 'View');
      rows.push(el('tr', { 'data-kind': kind },
        el('td', { class: 'kind' }, k.label, el('span', { class: 'what' }, k.what)),
        el('td', { class: 'text' }, ...(k.text.length
          ? k.text.map((q) => textLink(svc, kind, q))
          : [el('span', { class: 'muted' }, 'binary only')])),
        el('td', { class: 'opts' }, opts),
        el('td', { class: 'act' }, view)));
    }
    const meta = [`routes ${svc.routes.join(', ')}`];
    if (svc.host) meta.push(`host ${svc.host}`);
    meta.push(svc.base);
    if (svc.token_required) meta.push('token required');
    return el('article', { class: 'service', 'data-service': svc.name },
      el('h2', null, svc.name, el('span', { class: 'meta mono' }, meta.join(' · '))),
      el('table', null,
        el('thead', null, el('tr', null, el('th', null, 'Profile'), el('th', null, 'Text'),
                             el('th', null, 'Options'), el('th', null, ''))),
        el('tbody', null, ...rows)));
  }

  function render() {
    const box = $('services');
    if (!services.viewer.installed) {
      notice([el('strong', null, 'The speedscope viewer is not installed on this gateway.'),
              ' To install it, ' + services.viewer.hint + ' (looked in ', code(services.viewer.dir),
              '). Meanwhile profiles can still be collected and downloaded, and the text ' +
              'views work.']);
    } else {
      notice(null);
    }
    if (!services.services.length) {
      box.replaceChildren(el('p', { class: 'muted' },
        'No service here has a profiling agent you may use: give an [[upstream]] an ',
        code('agent = "unix:/path"'), ', and check its ', code('[pprof]'),
        ' policy (enabled, allow).'));
      return;
    }
    box.replaceChildren(...services.services.map(renderService));
  }

  async function loadServices() {
    let resp, body;
    try {
      resp = await fetch('services.json', { headers: authHeaders(), cache: 'no-store' });
      body = await resp.text();
    } catch (e) {
      $('services').replaceChildren(el('p', null, `The gateway did not answer: ${e.message || e}`));
      return;
    }
    if (!resp.ok) {
      if (resp.status === 401) showToken(true);
      $('services').replaceChildren(el('p', { class: 'status error' },
        describe(resp.status, resp.statusText, body, 'Listing the services')));
      return;
    }
    try {
      services = JSON.parse(body);
    } catch (e) {
      $('services').replaceChildren(el('p', null, 'services.json is not valid JSON: ' + e.message));
      return;
    }
    render();
  }

  showToken(false);
  loadServices();
})();
