// envsync's Synchronization screens. Every value from the database is hostile input: it only
// ever reaches the page as text (textContent, never innerHTML), and the Content-Security-Policy
// runs no inline script.
'use strict';

(() => {
  const state = {
    user: null,
    csrf: null,
    setup: null,
    form: null,      // the Synchronization screen's choices, kept while moving between screens
    review: null,    // the comparison under review
    tab: 'conflict',
    openChange: null,
  };

  // The manual's names of the sample shop's modules; other modules show their own name.
  const MODULE_LABELS = new Map([
    ['cms', 'CMS'], ['sliders', 'Sliders'], ['gallery', 'Gallery folders'], ['menus', 'Menus'],
    ['catalogue', 'Catalogue'], ['mobile_app', 'System config (mobile app JSONs)'],
  ]);
  const TABS = [
    ['conflict', 'Conflicts'], ['new', 'New records'], ['modified', 'Modified records'], ['deleted', 'Deleted records'],
  ];
  const STATUS_WORDS = new Map([
    ['pending', 'scheduled'], ['running', 'running'], ['succeeded', 'succeeded'], ['failed', 'failed'],
    ['cancelled', 'cancelled'],
  ]);

  // --- helpers ------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') el.className = value;
      else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
      else if (value === true) el.setAttribute(name, '');
      else el.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const $ = (id) => document.getElementById(id);
  const moduleLabel = (name) => MODULE_LABELS.get(name) || name;
  const envLabel = (name) => String(name).toUpperCase();
  const direction = (source, target) => `${envLabel(source)} > ${envLabel(target)}`;
  const plural = (n, one, many) => `${n} ${Number(n) === 1 ? one : many}`;
  const keyText = (key) => (Array.isArray(key) ? key.join(', ') : String(key));

  // "2026-12-01T22:00:00.123+05:30" as "2026-12-01 22:00 (UTC+05:30)": the server already
  // writes times in the user's time zone, with its offset.
  function when(iso) {
    if (!iso) return '–';
    const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(Z|[+-]\d\d(?::?\d\d)?)$/.exec(iso);
    if (!m) return iso;
    let offset = m[3] === 'Z' ? '+00:00' : m[3];
    if (/^[+-]\d\d$/.test(offset)) offset += ':00';
    return `${m[1]} ${m[2]} (UTC${offset})`;
  }

  function offsetText(minutes) {
    const sign = minutes < 0 ? '-' : '+';
    const abs = Math.abs(minutes);
    return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  }

  function timeZoneText() {
    let zone = '';
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { zone = ''; }
    const offset = `UTC${offsetText(-new Date().getTimezoneOffset())}`;
    return zone ? `${zone} (${offset})` : offset;
  }

  function sentence(text) {
    const s = String(text || '').trim();
    if (!s) return '';
    const first = s.charAt(0).toUpperCase() + s.slice(1);
    return /[.!?]$/.test(first) ? first : `${first}.`;
  }

  // What an error class means, before envsync's own words.
  function lead(sqlstate) {
    const code = String(sqlstate || '');
    if (code.startsWith('08')) return 'An environment could not be reached.';
    if (code === '42501') return 'Your role is not allowed to do this.';
    if (code === '23503') return 'A record refers to another one that would be missing.';
    if (code === '23505') return 'A value that must be unique is already taken.';
    if (code === '57014') return 'The operation was cancelled.';
    if (code === '55000') return 'This cannot be done now.';
    if (code === '42704') return 'Something named here does not exist.';
    if (code.startsWith('22')) return 'A value is not valid.';
    return '';
  }

  // An error of envsync (or of the admin) in plain words: what, the detail, what to do.
  function errorBox(report) {
    const r = report || {};
    return h('div', { class: 'error', role: 'alert' },
      lead(r.sqlstate) && h('p', { class: 'error-lead' }, lead(r.sqlstate)),
      h('p', { class: 'error-message' }, sentence(r.message || 'Something went wrong')),
      r.detail && h('p', { class: 'error-detail' }, h('span', { class: 'what' }, 'Detail: '), r.detail),
      r.hint && h('p', { class: 'error-hint' }, h('span', { class: 'what' }, 'What to do: '), r.hint),
      r.sqlstate && h('p', { class: 'error-code muted' }, `SQLSTATE ${r.sqlstate}`));
  }

  function notice(kind, ...content) {
    return h('div', { class: `notice ${kind}`, role: kind === 'warning' ? 'note' : 'status' }, ...content);
  }

  function fill(el, ...content) {
    el.replaceChildren(...content.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  class ApiError extends Error {
    constructor(status, report) {
      super(report && report.message);
      this.status = status;
      this.report = report || { message: `The admin answered with status ${status}` };
    }
  }

  async function api(method, path, body) {
    const options = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      options.headers['Content-Type'] = 'application/json';
      options.headers['X-CSRF-Token'] = state.csrf || '';
      options.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      throw new ApiError(0, { message: 'The admin cannot be reached', hint: 'Check that envsync-admin is running.' });
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const error = new ApiError(response.status, data && data.error);
      if ((response.status === 401 || response.status === 503) && path !== '/api/login' && state.user) {
        loggedOut(error.report);
      }
      throw error;
    }
    return data;
  }

  function confirmDialog(title, text, action) {
    return new Promise((resolve) => {
      const dialog = h('dialog', { class: 'confirm' },
        h('h2', {}, title), h('p', {}, text),
        h('div', { class: 'buttons' },
          h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close('no') }, 'Back'),
          h('button', { type: 'button', class: 'primary', id: 'confirm-yes', onclick: () => dialog.close('yes') }, action)));
      dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'yes'); });
      document.body.append(dialog);
      dialog.showModal();
    });
  }

  // Follows the operation running in the user's session, showing envsync's own progress
  // (its NOTICEs) until it ends; resolves with the operation's final state.
  async function followJob(box) {
    const bar = h('progress', { class: 'bar' });
    const text = h('p', { class: 'progress-text' }, 'Starting…');
    fill(box, h('div', { class: 'progress', role: 'status' }, bar, text));
    for (;;) {
      const job = await api('GET', '/api/job');
      if (!job) return null;
      const p = job.progress;
      if (p && p.steps) {
        bar.max = p.steps;
        bar.value = p.step;
        text.textContent = `Step ${p.step} of ${p.steps}: ${p.what}`;
      }
      if (job.state !== 'running') {
        if (job.state === 'done') {
          bar.max = 1;
          bar.value = 1;
        }
        return job;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  function summaryTable(modules, test) {
    const rows = (modules || []).map((m) => h('tr', {},
      h('td', {}, moduleLabel(m.module)), h('td', { class: 'num' }, m.inserted), h('td', { class: 'num' }, m.updated),
      h('td', { class: 'num' }, m.deleted)));
    return h('table', { class: 'summary' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Module'),
        h('th', { class: 'num' }, test ? 'Would insert' : 'Inserted'),
        h('th', { class: 'num' }, test ? 'Would update' : 'Updated'),
        h('th', { class: 'num' }, test ? 'Would delete' : 'Deleted'))),
      h('tbody', {}, rows));
  }

  // --- login, session, navigation -----------------------------------------------------------

  async function refreshUnread() {
    try {
      const s = await api('GET', '/api/session');
      const badge = $('unread');
      badge.hidden = !s.unread;
      badge.textContent = s.unread ? String(s.unread) : '';
      badge.title = s.unread ? `${plural(s.unread, 'unread message', 'unread messages')}` : '';
    } catch (e) { /* shown by the screen itself */ }
  }

  function showLogin(report) {
    state.user = null;
    state.csrf = null;
    $('nav').hidden = true;
    $('who').hidden = true;
    $('login').hidden = false;
    fill($('screen'));
    fill($('login-error'), report ? errorBox(report) : null);
    $('login-user').focus();
  }

  function loggedOut(report) {
    showLogin(report);
  }

  function loggedIn(session) {
    state.user = session.user;
    state.csrf = session.csrf;
    $('login').hidden = true;
    $('nav').hidden = false;
    $('who').hidden = false;
    $('user').textContent = session.user;
    $('login-password').value = '';
    fill($('login-error'));
    refreshUnread();
    route();
  }

  async function login(event) {
    event.preventDefault();
    const button = $('login-submit');
    button.disabled = true;
    fill($('login-error'));
    try {
      let zone = null;
      try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch (e) { zone = null; }
      const session = await api('POST', '/api/login',
        { user: $('login-user').value, password: $('login-password').value, time_zone: zone });
      loggedIn(session);
    } catch (e) {
      $('login-password').value = '';
      fill($('login-error'), errorBox(e.report));
    } finally {
      button.disabled = false;
    }
  }

  async function logout() {
    try { await api('POST', '/api/logout'); } catch (e) { /* logged out either way */ }
    showLogin(null);
  }

  function route() {
    if (!state.user) return;
    const [screen, arg] = (location.hash.replace(/^#/, '') || 'sync').split('/');
    for (const link of document.querySelectorAll('#nav a')) {
      link.classList.toggle('active', link.dataset.screen === screen);
    }
    const screens = { sync: showSync, review: showReview, messages: showMessages, history: showHistory };
    const show = screens[Object.prototype.hasOwnProperty.call(screens, screen) ? screen : 'sync'];
    const view = h('div', { class: 'view' });
    fill($('screen'), view);
    show(view, arg).catch((e) => fill(view, errorBox(e.report || { message: String(e) })));
  }

  // --- 1. Synchronization -------------------------------------------------------------------

  async function showSync(view) {
    const setup = await api('GET', '/api/setup');
    state.setup = setup;
    const local = setup.environments.find((e) => e.local);
    const others = setup.environments.filter((e) => !e.local);
    if (!local || !others.length) {
      fill(view, h('h1', {}, 'Synchronization'), errorBox({ message: 'envsync knows no second environment',
        hint: 'The administrator registers TEST with sync_add_environment().' }));
      return;
    }
    const directions = [];
    for (const other of others) {
      directions.push({ source: local.name, target: other.name }, { source: other.name, target: local.name });
    }
    const requires = new Map(setup.modules.map((m) => [m.module, m.requires || []]));
    const roots = new Map(setup.modules.filter((m) => m.root).map((m) => [m.module, m.root]));
    if (!state.form) {
      state.form = { direction: directions.length > 1 ? 1 : 0, mode: 'all', chosen: new Set(), scope: new Map() };
    }
    const form = state.form;
    const choices = new Map();  // module -> folders of the source

    const closure = (modules) => {
      const all = new Set();
      const visit = (m) => {
        if (all.has(m)) return;
        all.add(m);
        for (const r of requires.get(m) || []) visit(r);
      };
      modules.forEach(visit);
      return all;
    };
    // Why a module is on though not chosen: the chosen modules that require it.
    const requiredBy = (module) => [...form.chosen].filter((c) => c !== module && closure([c]).has(module));

    const directionBox = h('fieldset', { class: 'choice', id: 'direction' }, h('legend', {}, 'Direction'),
      directions.map((d, i) => h('label', { class: 'radio' },
        h('input', { type: 'radio', name: 'direction', value: String(i), checked: i === form.direction,
          onchange: () => { form.direction = i; form.scope.clear(); choices.clear(); render(); } }),
        direction(d.source, d.target))));
    const modeBox = h('fieldset', { class: 'choice', id: 'mode' }, h('legend', {}, 'Mode'),
      [['all', 'Synchronize all records', 'new, modified and deleted records of the source'],
        ['new', 'Synchronize only new records', 'records created in the source only']].map(([value, label, note]) =>
        h('label', { class: 'radio' },
          h('input', { type: 'radio', name: 'mode', value, checked: form.mode === value,
            onchange: () => { form.mode = value; } }),
          label, h('span', { class: 'muted' }, ` (${note})`))));

    const modulesList = h('div', { class: 'modules', id: 'modules' });
    const folders = h('div', { id: 'folders' });
    const startBox = h('div', { id: 'compare-progress' });
    const result = h('div', { id: 'compare-result' });
    const start = h('button', { type: 'button', class: 'primary', id: 'start-compare', onclick: () => compare() },
      'Start comparing environments');

    fill(view,
      h('h1', {}, 'Synchronization'),
      h('p', { class: 'muted' }, 'Synchronization works between PROD and TEST, one direction at a time, and is started from PROD.'),
      h('div', { class: 'card' }, directionBox, modeBox,
        h('fieldset', { class: 'choice' }, h('legend', {}, 'Modules'),
          h('button', { type: 'button', class: 'secondary', id: 'select-all-modules',
            onclick: () => { setup.modules.forEach((m) => form.chosen.add(m.module)); render(); } }, 'Select all'),
          modulesList, folders),
        h('div', { class: 'actions' }, start), startBox, result));

    async function loadChoices(module) {
      const d = directions[form.direction];
      if (choices.has(module)) return;
      choices.set(module, null);
      try {
        const list = await api('GET', `/api/scope?environment=${encodeURIComponent(d.source)}&module=${encodeURIComponent(module)}`);
        choices.set(module, list);
      } catch (e) {
        choices.set(module, e.report || { message: String(e) });
      }
      render();
    }

    function folderName(choice) {
      const r = choice.record || {};
      return r.path || r.name || r.title || choice.key;
    }

    function render() {
      const on = closure(form.chosen);
      fill(modulesList, setup.modules.map((m) => {
        const chosen = form.chosen.has(m.module);
        const required = !chosen && on.has(m.module);
        const by = required ? requiredBy(m.module) : [];
        return h('div', { class: `module${on.has(m.module) ? ' on' : ''}`, 'data-module': m.module },
          h('label', { class: 'switch' },
            h('input', { type: 'checkbox', role: 'switch', checked: on.has(m.module), disabled: required,
              'aria-describedby': required ? `why-${m.module}` : null,
              onchange: (event) => {
                if (event.target.checked) form.chosen.add(m.module); else form.chosen.delete(m.module);
                render();
              } }),
            h('span', { class: 'slider', 'aria-hidden': 'true' }),
            h('span', { class: 'name' }, moduleLabel(m.module))),
          h('span', { class: 'tables muted' }, m.tables.join(', ')),
          required && h('p', { class: 'why', id: `why-${m.module}` },
            `Switched on because ${by.map(moduleLabel).join(' and ')} requires it`,
            m.module === 'gallery' && by.includes('mobile_app') ? ': the mobile app has mandatory images.' : '.'));
      }));
      const rootsOn = [...roots.keys()].filter((m) => on.has(m));
      fill(folders, rootsOn.map((module) => {
        const list = choices.get(module);
        if (list === undefined) { loadChoices(module); }
        const d = directions[form.direction];
        const box = h('fieldset', { class: 'folders', 'data-module': module },
          h('legend', {}, `${moduleLabel(module)} of ${envLabel(d.source)} to synchronize`));
        if (on.has('mobile_app') && module === 'gallery') {
          box.append(h('p', { class: 'muted' },
            'Remember to synchronize the gallery folders used for the mobile app graphics (in most cases the mobile_app folder).'));
        }
        if (!list) { box.append(h('p', { class: 'muted' }, 'Loading…')); return box; }
        if (!Array.isArray(list)) { box.append(errorBox(list)); return box; }
        const picked = form.scope.get(module);  // undefined: all of them
        const all = h('input', { type: 'checkbox', class: 'all-folders', checked: !picked,
          onchange: (event) => { if (event.target.checked) form.scope.delete(module); else form.scope.set(module, new Set()); render(); } });
        box.append(h('label', { class: 'folder all' }, all, 'All folders'));
        box.append(h('div', { class: 'folder-list' }, list.map((choice) => h('label', { class: 'folder', 'data-key': choice.key },
          h('input', { type: 'checkbox', value: choice.key, checked: !picked || picked.has(choice.key),
            onchange: (event) => {
              const set = form.scope.get(module) || new Set(list.map((c) => c.key));
              if (event.target.checked) set.add(choice.key); else set.delete(choice.key);
              if (set.size === list.length) form.scope.delete(module); else form.scope.set(module, set);
              render();
            } }),
          folderName(choice)))));
        return box;
      }));
    }

    async function compare() {
      fill(result);
      const on = closure(form.chosen);
      if (!form.chosen.size) {
        fill(result, errorBox({ message: 'Choose at least one module' }));
        return;
      }
      const scope = {};
      for (const [module, set] of form.scope) {
        if (!on.has(module)) continue;
        if (!set.size) {
          fill(result, errorBox({ message: `Choose at least one of the ${moduleLabel(module).toLowerCase()}` }));
          return;
        }
        scope[module] = [...set];
      }
      const d = directions[form.direction];
      start.disabled = true;
      try {
        await api('POST', '/api/compare', { source: d.source, target: d.target, mode: form.mode,
          modules: [...form.chosen], scope: Object.keys(scope).length ? scope : null });
        await showCompareOutcome(await followJob(startBox));
      } catch (e) {
        fill(result, errorBox(e.report));
      } finally {
        start.disabled = false;
      }
    }

    async function showCompareOutcome(job) {
      if (!job) return;
      if (job.state === 'failed') {
        fill(result, errorBox(job.error));
        return;
      }
      const c = job.result.comparison;
      fill(result, notice('success',
        h('p', { class: 'statement', id: 'compare-statement' },
          `Comparison ${c.id} is finished: ${direction(c.source, c.target)}, `,
          `${plural(c.conflicts, 'conflict', 'conflicts')}, ${c.new} new, ${c.modified} modified and `,
          `${c.deleted} deleted ${Number(c.deleted) === 1 ? 'record' : 'records'}.`),
        h('p', { id: 'mail-statement' }, job.result.mail_to
          ? `An e-mail with the result of the comparison was sent to ${job.result.mail_to}.`
          : 'No e-mail was sent: your role has no e-mail address in envsync (the administrator sets it with sync_set_operator).'),
        h('p', {}, h('a', { href: `#review/${c.id}`, class: 'button primary', id: 'go-review' }, 'Review the changes'))));
    }

    render();
    // An operation started before, still running or just finished, is shown again.
    const job = await api('GET', '/api/job');
    if (job && job.kind === 'compare') {
      if (job.state === 'running') {
        start.disabled = true;
        const done = await followJob(startBox);
        start.disabled = false;
        await showCompareOutcome(done);
      }
    }
  }

  // --- 2. Changes review --------------------------------------------------------------------

  async function showReview(view, arg) {
    let id = arg;
    if (!id) {
      const latest = await api('GET', '/api/comparisons/latest');
      if (!latest.id) {
        fill(view, h('h1', {}, 'Changes review'),
          notice('info', 'No comparison yet: start one on the ', h('a', { href: '#sync' }, 'Synchronization'), ' screen.'));
        return;
      }
      id = String(latest.id);
    }
    const data = await api('GET', `/api/comparisons/${encodeURIComponent(id)}`);
    if (!state.review || state.review.comparison.id !== data.comparison.id) {
      state.tab = 'conflict';
      state.openChange = null;
    }
    state.review = data;
    const c = data.comparison;
    const synchronized = data.syncs.find((s) => s.kind === 'synchronization' && ['running', 'succeeded'].includes(s.status));
    const pending = data.syncs.find((s) => s.kind === 'synchronization' && s.status === 'pending');
    const frozen = Boolean(synchronized);

    const tabs = h('div', { class: 'tabs', role: 'tablist', id: 'tabs' });
    const panel = h('div', { class: 'tab-panel', role: 'tabpanel', id: 'tab-panel' });
    const selectionError = h('div', { id: 'selection-error' });
    const diff = h('div', { id: 'diff' });

    const scopeText = c.scope ? Object.entries(c.scope).map(([m, keys]) => `${moduleLabel(m)}: ${keys.join(', ')}`).join('; ') : null;
    fill(view,
      h('h1', {}, `Changes review: comparison ${c.id}`),
      h('div', { class: 'card' },
        h('p', { class: 'statement', id: 'direction-statement' },
          `Synchronization ${direction(c.source, c.target)}: the selected records of ${envLabel(c.source)} will be written into ${envLabel(c.target)}.`),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Mode'), h('dd', {}, c.mode === 'new' ? 'Synchronize only new records' : 'Synchronize all records'),
          h('dt', {}, 'Modules'), h('dd', {}, (c.modules || []).map(moduleLabel).join(', '),
            c.added_modules && c.added_modules.length ? ` (${c.added_modules.map(moduleLabel).join(', ')} added because required)` : ''),
          scopeText && [h('dt', {}, 'Only'), h('dd', {}, scopeText)],
          h('dt', {}, 'Compared'), h('dd', {}, `${when(c.finished_at)} by ${c.started_by}`)),
        c.status === 'superseded' && notice('warning',
          'A newer comparison of these environments exists: this one may no longer be synchronized. ',
          h('a', { href: '#review' }, 'Review the newest one.')),
        synchronized && notice('info', `This comparison was synchronized by synchronization ${synchronized.id} (${STATUS_WORDS.get(synchronized.status)}): its selection can no longer change. Compare again to synchronize more.`),
        pending && notice('info', `Synchronization ${pending.id} of this comparison is scheduled for ${when(pending.run_at)}; it writes the records selected when it starts. Cancel it in `,
          h('a', { href: '#messages' }, 'Messages'), ' to schedule another.')),
      tabs, selectionError, panel, diff,
      scheduleSection(c, frozen || Boolean(pending)));

    const count = (kind) => data.changes.filter((ch) => ch.kind === kind).length;

    function renderTabs() {
      fill(tabs, TABS.map(([kind, label]) => h('button', {
        type: 'button', role: 'tab', class: `tab${state.tab === kind ? ' active' : ''}`, 'data-kind': kind,
        'aria-selected': state.tab === kind ? 'true' : 'false',
        onclick: () => { state.tab = kind; renderTabs(); renderPanel(); },
      }, `${label} `, h('span', { class: 'count' }, String(count(kind))))));
    }

    async function select(body, checkbox) {
      fill(selectionError);
      try {
        const answer = await api('POST', '/api/select', { comparison_id: c.id, ...body });
        for (const ch of data.changes) {
          if (Object.prototype.hasOwnProperty.call(answer.selected, String(ch.change_id))) {
            ch.selected = answer.selected[String(ch.change_id)];
          }
        }
      } catch (e) {
        fill(selectionError, errorBox(e.report));
        if (checkbox) checkbox.checked = !checkbox.checked;
      }
      renderPanel();
    }

    function cascadesOf(ch) {
      const value = ch.cascades;
      if (value === null || value === undefined) return false;
      if (Array.isArray(value)) return value.length > 0;
      if (typeof value === 'object') return Object.keys(value).length > 0;
      return Boolean(value);
    }

    function renderPanel() {
      const kind = state.tab;
      const rows = data.changes.filter((ch) => ch.kind === kind);
      const selected = rows.filter((ch) => ch.selected).length;
      const label = TABS.find(([k]) => k === kind)[1];
      if (!rows.length) {
        fill(panel, h('p', { class: 'muted empty' }, `No ${label.toLowerCase()}.`));
        return;
      }
      const byModule = new Map();
      for (const ch of rows) {
        if (!byModule.has(ch.module)) byModule.set(ch.module, []);
        byModule.get(ch.module).push(ch);
      }
      fill(panel,
        kind === 'conflict' && notice('info',
          'A conflict is a record changed in the target since it was last synchronized. It is not synchronized unless you select it: selecting it ignores the conflict and overwrites the data in ',
          envLabel(c.target), '.'),
        h('div', { class: 'toolbar' },
          h('span', { class: 'selected-count', id: 'selected-count' }, `${selected} of ${rows.length} selected`),
          h('button', { type: 'button', class: 'secondary', id: 'tab-select-all', disabled: frozen,
            onclick: () => select({ selected: true, kind }) }, 'Select all'),
          h('button', { type: 'button', class: 'secondary', id: 'tab-select-none', disabled: frozen,
            onclick: () => select({ selected: false, kind }) }, 'Select none')),
        [...byModule].map(([module, list]) => {
          const all = list.every((ch) => ch.selected);
          return h('table', { class: 'changes', 'data-module': module },
            h('colgroup', {}, ['check', 'table', 'key', 'label', 'info', 'actions'].map((c) => h('col', { class: `col-${c}` }))),
            h('thead', {},
              h('tr', { class: 'module-row' },
                h('th', { class: 'check' }, h('input', { type: 'checkbox', class: 'module-check', checked: all,
                  disabled: frozen, 'aria-label': `Select every ${label.toLowerCase()} record of ${moduleLabel(module)}`,
                  onchange: (event) => select({ selected: event.target.checked, kind, module }, event.target) })),
                h('th', { colspan: 5 }, moduleLabel(module), h('span', { class: 'muted' }, ` · ${list.filter((ch) => ch.selected).length} of ${list.length} selected`))),
              h('tr', {}, h('th', {}), h('th', {}, 'Table'), h('th', {}, 'Record'), h('th', {}, 'Name'),
                h('th', {}, kind === 'conflict' ? 'Reason' : 'Changed columns'), h('th', {}))),
            h('tbody', {}, list.map((ch) => h('tr', {
              class: `change${ch.selected ? ' selected' : ''}${state.openChange === ch.change_id ? ' open' : ''}`,
              'data-change': ch.change_id, 'data-table': ch.table_name, 'data-key': keyText(ch.key),
            },
            h('td', { class: 'check' }, h('input', { type: 'checkbox', class: 'record-check', checked: ch.selected, disabled: frozen,
              'aria-label': kind === 'conflict' ? 'Ignore the conflict and overwrite the data' : 'Synchronize this record',
              title: kind === 'conflict' ? 'Ignore the conflict and overwrite the data' : null,
              onchange: (event) => select({ selected: event.target.checked, change_ids: [ch.change_id] }, event.target) })),
            h('td', {}, ch.table_name),
            h('td', { class: 'key' }, keyText(ch.key)),
            h('td', { class: 'label' }, ch.label || ''),
            h('td', {}, kind === 'conflict' ? h('span', { class: 'reason' }, ch.conflict_reason)
              : (ch.changed_columns || []).join(', ')),
            h('td', { class: 'row-actions' },
              cascadesOf(ch) && h('span', { class: 'badge warn cascade', title: 'Deleting it also deletes records that are never synchronized' },
                'Deletes never-synced data'),
              h('button', { type: 'button', class: 'link show-diff', onclick: () => openDiff(ch) }, 'Show differences'))))));
      }));
    }

    async function openDiff(ch) {
      state.openChange = ch.change_id;
      renderPanel();
      fill(diff, h('p', { class: 'muted' }, 'Loading…'));
      try {
        const d = await api('GET', `/api/changes/${ch.change_id}`);
        const value = (v, present) => {
          if (!present) return h('span', { class: 'absent' }, '(no record)');
          if (!v) return h('span', { class: 'absent' }, '(absent)');
          if (v.type === 'null') return h('span', { class: 'null' }, 'NULL');
          if (v.type === 'json') return h('pre', { class: 'json' }, v.text);
          return h('pre', { class: v.type }, v.text);
        };
        const change = d.change;
        fill(diff, h('div', { class: 'card diff', id: 'diff-card', 'data-change': change.change_id },
          h('div', { class: 'diff-head' },
            h('h2', {}, `${change.table_name} ${keyText(change.key)}`, ch.label ? ` · ${ch.label}` : ''),
            h('button', { type: 'button', class: 'secondary', onclick: () => { state.openChange = null; fill(diff); renderPanel(); } }, 'Close')),
          h('p', { class: 'muted' }, `${TABS.find(([k]) => k === change.kind)[1]}`,
            change.conflict_reason ? ` · conflict: ${change.conflict_reason}` : '',
            change.changed_columns && change.changed_columns.length ? ` · changed: ${change.changed_columns.join(', ')}` : ''),
          d.cascades_text && notice('warning', h('p', {}, 'Deleting this record would also delete records that are never synchronized:'),
            h('pre', { class: 'json' }, d.cascades_text)),
          h('table', { class: 'diff-table' },
            h('thead', {}, h('tr', {}, h('th', {}, 'Column'),
              h('th', {}, `${envLabel(d.source)} (source)`), h('th', {}, `${envLabel(d.target)} (target)`))),
            h('tbody', {}, d.columns.map((col) => h('tr', { class: col.changed ? 'changed' : null, 'data-column': col.name },
              h('th', { scope: 'row' }, col.name),
              h('td', { class: 'source' }, value(col.source, d.source_present)),
              h('td', { class: 'target' }, value(col.target, d.target_present))))))));
        $('diff-card').scrollIntoView({ block: 'nearest' });
      } catch (e) {
        fill(diff, errorBox(e.report));
      }
    }

    renderTabs();
    renderPanel();
    if (state.openChange) {
      const ch = data.changes.find((x) => x.change_id === state.openChange);
      if (ch) openDiff(ch);
    }
  }

  function pad(n) { return String(n).padStart(2, '0'); }

  function scheduleSection(c, frozen) {
    let locked = frozen;   // once scheduled or synchronized, the comparison is done with
    const now = new Date();
    const date = h('input', { type: 'date', id: 'run-date', value: `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}` });
    const time = h('input', { type: 'time', id: 'run-time', value: `${pad(now.getHours())}:${pad(now.getMinutes())}` });
    const test = h('input', { type: 'checkbox', id: 'test-import' });
    const chosen = h('p', { class: 'run-at', id: 'run-at-text' });
    const progress = h('div', { id: 'run-progress' });
    const result = h('div', { id: 'run-result' });
    const button = h('button', { type: 'button', class: 'primary', id: 'schedule', disabled: locked, onclick: () => run() },
      'Schedule synchronization');

    // The chosen local date and time as an instant with its UTC offset, e.g. 2026-12-01T22:00:00+05:30.
    function runAt() {
      const [y, mo, d] = date.value.split('-').map(Number);
      const [hh, mi] = time.value.split(':').map(Number);
      if (!y || Number.isNaN(hh) || Number.isNaN(mi)) return null;
      const at = new Date(y, mo - 1, d, hh, mi);
      return { iso: `${date.value}T${pad(hh)}:${pad(mi)}:00${offsetText(-at.getTimezoneOffset())}`, at };
    }
    function showChosen() {
      const r = runAt();
      if (!r) { chosen.textContent = ''; return; }
      const soon = r.at.getTime() < Math.floor(Date.now() / 60000) * 60000 + 60000;
      chosen.textContent = soon ? 'Runs now: the time chosen is this minute or before.' : `Runs on ${when(r.iso)}.`;
    }
    date.addEventListener('input', showChosen);
    time.addEventListener('input', showChosen);
    date.addEventListener('change', showChosen);
    time.addEventListener('change', showChosen);

    async function run() {
      fill(result);
      fill(progress);
      const r = runAt();
      if (!r) { fill(result, errorBox({ message: 'Give a date and a time' })); return; }
      button.disabled = true;
      try {
        const answer = await api('POST', '/api/run', { comparison_id: c.id, run_at: r.iso, test_import: test.checked });
        if (answer.scheduled) {
          const s = answer.scheduled;
          locked = !s.test_import;
          fill(result, notice('success', h('p', { id: 'run-statement' },
            `${s.test_import ? 'Test import' : 'Synchronization'} ${s.id} is scheduled for ${when(s.run_at)}. `,
            'Its message in ', h('a', { href: '#messages' }, 'Messages'), ' shows when it runs and lets you cancel it.')));
          refreshUnread();
          return;
        }
        const job = await followJob(progress);
        refreshUnread();
        if (job.state === 'failed') {
          fill(result, h('p', { class: 'statement failure', id: 'run-statement' },
            `The ${job.kind} failed: nothing was written.`), errorBox(job.error));
          return;
        }
        const s = job.result.sync || {};
        locked = !s.test_import;
        fill(result, notice('success',
          h('p', { id: 'run-statement' }, s.test_import
            ? `Test import ${s.id} finished: nothing was saved. A synchronization would write:`
            : `Synchronization ${s.id} finished: the planned changes were applied.`),
          summaryTable(job.result.modules, s.test_import)));
      } catch (e) {
        fill(result, errorBox(e.report));
      } finally {
        button.disabled = locked;
      }
    }

    showChosen();
    return h('div', { class: 'card schedule', id: 'schedule-section' },
      h('h2', {}, 'Schedule synchronization'),
      notice('warning', h('strong', {}, 'Warning: '),
        'after scheduling a synchronization, do not make any changes to the source and target environments until the synchronization is finished or cancelled. ',
        'Before writing, envsync checks that no selected record changed since this review; if one did, nothing is written and the synchronization fails, naming the records.'),
      h('div', { class: 'when' },
        h('label', {}, 'Date ', date), h('label', {}, 'Time ', time),
        h('button', { type: 'button', class: 'secondary', id: 'run-now', onclick: () => {
          const n = new Date();
          date.value = `${n.getFullYear()}-${pad(n.getMonth() + 1)}-${pad(n.getDate())}`;
          time.value = `${pad(n.getHours())}:${pad(n.getMinutes())}`;
          showChosen();
        } }, 'Now')),
      h('p', { class: 'muted', id: 'time-zone' }, `Times are in your time zone, ${timeZoneText()}.`), chosen,
      h('label', { class: 'check-line' }, test, ' Test import (changes will not be saved)'),
      h('div', { class: 'actions' }, button), progress, result);
  }

  // --- 3. Messages --------------------------------------------------------------------------

  async function showMessages(view) {
    const messages = await api('GET', '/api/messages');
    const list = h('div', { class: 'messages', id: 'messages' });
    fill(view, h('h1', {}, 'Messages'), list);
    if (!messages.length) {
      fill(list, h('p', { class: 'muted' }, 'No messages yet. A message tells when a synchronization is scheduled and how it ended.'));
      return;
    }
    for (const m of messages) list.append(messageItem(m));
    refreshUnread();
  }

  function messageItem(m) {
    const details = h('div', { class: 'message-body', hidden: true });
    const item = h('article', { class: `message${m.read ? '' : ' unread'}`, 'data-message': m.id, 'data-sync': m.sync_id });
    const header = h('button', { type: 'button', class: 'message-head', 'aria-expanded': 'false', onclick: toggle },
      h('span', { class: 'title' }, m.title),
      !m.read && h('span', { class: 'badge new' }, 'New'),
      m.sync && h('span', { class: 'muted about' },
        `${m.sync.test_import ? 'Test import' : 'Synchronization'} ${m.sync.id}, ${direction(m.sync.source, m.sync.target)}`),
      h('span', { class: 'muted when' }, when(m.updated_at || m.created_at)));
    item.append(header, details);

    async function toggle() {
      const open = details.hidden;
      details.hidden = !open;
      header.setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open) {
        fill(details, messageDetails(m));
        if (!m.read) {
          try {
            await api('POST', '/api/messages/read', { id: m.id, read: true });
            m.read = true;
            item.classList.remove('unread');
            const badge = header.querySelector('.badge.new');
            if (badge) badge.remove();
            refreshUnread();
          } catch (e) { details.prepend(errorBox(e.report)); }
        }
      }
    }
    return item;
  }

  function messageDetails(m) {
    const s = m.sync;
    const parts = [h('p', { class: 'text' }, m.body)];
    if (!s) return parts;
    parts.push(h('p', { class: 'muted' }, `${s.test_import ? 'Test import' : 'Synchronization'} ${s.id}, ${direction(s.source, s.target)}, comparison `,
      h('a', { href: `#review/${s.comparison_id}` }, String(s.comparison_id)), '.'));
    if (s.status === 'pending') {
      const outcome = h('div', { class: 'cancel-result' });
      parts.push(h('p', { class: 'scheduled' }, `Scheduled for ${when(s.run_at)}.`),
        h('p', {}, 'To cancel the synchronization, click ',
          h('button', { type: 'button', class: 'link cancel', 'data-sync': s.id, onclick: async (event) => {
            if (!await confirmDialog(`Cancel synchronization ${s.id}?`, `It will not run at ${when(s.run_at)}.`, 'Cancel the synchronization')) return;
            event.target.disabled = true;
            try {
              await api('POST', '/api/cancel', { sync_id: s.id });
              route();
            } catch (e) {
              fill(outcome, errorBox(e.report));
              event.target.disabled = false;
            }
          } }, 'HERE'), '.'), outcome);
    } else if (s.status === 'running') {
      parts.push(h('p', {}, `Running since ${when(s.started_at)}.`));
    } else if (s.status === 'succeeded') {
      parts.push(h('p', {}, s.test_import ? 'Test import: nothing was saved. A synchronization would write:' : 'The planned changes have been applied:'),
        summaryTable(s.summary, s.test_import));
    } else if (s.status === 'failed') {
      parts.push(h('p', { class: 'statement failure' },
        `The ${s.test_import ? 'test import' : 'synchronization'} did not succeed: nothing was applied.`),
        errorBox({ sqlstate: s.error_code, message: s.error, detail: s.error_detail, hint: s.error_hint }));
    } else if (s.status === 'cancelled') {
      parts.push(h('p', {}, `Cancelled by ${s.cancelled_by || '–'} on ${when(s.finished_at)}.`));
    }
    return parts;
  }

  // --- 4. History ---------------------------------------------------------------------------

  async function showHistory(view) {
    const data = await api('GET', '/api/history');
    const outcome = h('div', { id: 'revert-progress' });
    const result = h('div', { id: 'revert-result' });

    async function revert(s, button) {
      if (!await confirmDialog(`Revert synchronization ${s.id}?`,
        `${envLabel(s.target)} is put back as it was before synchronization ${s.id}, all or nothing. It is refused if ${envLabel(s.target)} changed since.`,
        'Revert')) return;
      button.disabled = true;
      fill(result);
      try {
        await api('POST', '/api/revert', { sync_id: s.id });
        const job = await followJob(outcome);
        if (job.state === 'failed') {
          fill(result, h('p', { class: 'statement failure', id: 'revert-statement' }, `The revert of synchronization ${s.id} failed: nothing was written.`),
            errorBox(job.error));
          button.disabled = false;
          return;
        }
        const r = job.result.sync || {};
        fill(result, notice('success', h('p', { id: 'revert-statement' },
          `Synchronization ${s.id} is reverted (revert ${r.id}): ${envLabel(s.target)} is back as it was.`),
          summaryTable(job.result.modules, false)));
        const table = $('syncs');
        if (table) {
          const fresh = await api('GET', '/api/history');
          table.replaceWith(syncsTable(fresh.syncs));
        }
      } catch (e) {
        fill(result, errorBox(e.report));
        button.disabled = false;
      }
    }

    function syncsTable(syncs) {
      if (!syncs.length) return h('p', { class: 'muted', id: 'syncs' }, 'No synchronization yet.');
      return h('table', { class: 'history', id: 'syncs' },
        h('thead', {}, h('tr', {}, ['#', 'Kind', 'Direction', 'Status', 'Run at', 'By', 'Inserted', 'Updated', 'Deleted', 'Outcome', 'Revert']
          .map((t) => h('th', {}, t)))),
        h('tbody', {}, syncs.map((s) => h('tr', { 'data-sync': s.id, class: `status-${s.status}` },
          h('td', {}, String(s.id)),
          h('td', {}, s.kind === 'revert' ? `revert of ${s.reverts}` : s.kind),
          h('td', {}, direction(s.source, s.target)),
          h('td', { class: 'status' }, STATUS_WORDS.get(s.status) || s.status),
          h('td', {}, when(s.run_at)),
          h('td', {}, s.scheduled_by),
          h('td', { class: 'num' }, s.inserted === null ? '–' : s.inserted),
          h('td', { class: 'num' }, s.updated === null ? '–' : s.updated),
          h('td', { class: 'num' }, s.deleted === null ? '–' : s.deleted),
          h('td', { class: 'outcome' }, s.status === 'failed' ? sentence(s.error)
            : s.cancelled_by ? `Cancelled by ${s.cancelled_by}` : s.reverted_by ? `Reverted by ${s.reverted_by}` : ''),
          h('td', { class: 'revert' }, s.revertible_until ? [
            h('button', { type: 'button', class: 'secondary revert-button', onclick: (event) => revert(s, event.target) }, 'Revert'),
            h('span', { class: 'muted until' }, ` until ${when(s.revertible_until)}`)] : '')))));
    }

    fill(view, h('h1', {}, 'History'),
      h('h2', {}, 'Synchronizations'), outcome, result, syncsTable(data.syncs),
      h('h2', {}, 'Comparisons'),
      data.comparisons.length ? h('table', { class: 'history', id: 'comparisons' },
        h('thead', {}, h('tr', {}, ['#', 'Direction', 'Mode', 'Modules', 'By', 'Finished', 'Conflicts', 'New', 'Modified', 'Deleted', 'Status', '']
          .map((t) => h('th', {}, t)))),
        h('tbody', {}, data.comparisons.map((c) => h('tr', { 'data-comparison': c.id },
          h('td', {}, String(c.id)), h('td', {}, direction(c.source, c.target)), h('td', {}, c.mode),
          h('td', {}, (c.modules || []).map(moduleLabel).join(', ')), h('td', {}, c.started_by), h('td', {}, when(c.finished_at)),
          h('td', { class: 'num' }, c.conflicts), h('td', { class: 'num' }, c.new), h('td', { class: 'num' }, c.modified),
          h('td', { class: 'num' }, c.deleted), h('td', {}, c.status),
          h('td', {}, h('a', { href: `#review/${c.id}` }, 'Review'))))))
        : h('p', { class: 'muted' }, 'No comparison yet.'));
  }

  // --- start --------------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', async () => {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    window.addEventListener('hashchange', route);
    // The menu entry of the screen shown shows it anew (fresh messages, say).
    for (const link of document.querySelectorAll('#nav a')) {
      link.addEventListener('click', () => { if (link.hash === location.hash) route(); });
    }
    try {
      loggedIn(await api('GET', '/api/session'));
    } catch (e) {
      showLogin(null);
    }
  });
})();
