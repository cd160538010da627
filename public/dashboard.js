// telemetry-hub live dashboard: plain JS, no build step.
// - devices and their last-seen time from GET api/devices (polled);
// - the selected device's last 10 minutes from GET api/devices/:id/samples,
//   then live `sample` events from the WebSocket (`subscribe`), drawn with uPlot;
// - longer ranges (1 h, 24 h, 7 d) from GET api/devices/:id/series: buckets in
//   the browser's time zone, avg drawn within a min/max band, and live samples
//   folded into the buckets as they arrive. A server without that route gets
//   the range's newest raw samples instead;
// - fleet figures from GET api/dashboard/metrics (polled), with their age from
//   its `Age` header: the service computes them at most every few minutes.
// - open alarms from GET api/alarms (polled, and at once on an `alarm` event).
// The WebSocket reconnects by itself with exponential backoff, and a
// RATE_LIMITED answer pauses sending for `retryAfterMs`, then retries the
// refused request. `?token=` on the page URL is passed on to /ws (WS_TOKEN).
(() => {
  'use strict';

  const MAX_POINTS = 1500;
  /** Raw points kept when a long range falls back to raw samples (the samples route answers at most 10,000 rows). */
  const MAX_FALLBACK_POINTS = 5000;
  const MINUTE = 60_000;
  const HOUR = 60 * MINUTE;
  // About 60–300 buckets per chart: enough detail for the width of a chart.
  const RANGES = {
    '10m': { label: '10 min', ms: 10 * MINUTE, interval: null },
    '1h': { label: '1 h', ms: HOUR, interval: '1m', bucketMs: MINUTE },
    '24h': { label: '24 h', ms: 24 * HOUR, interval: '5m', bucketMs: 5 * MINUTE },
    '7d': { label: '7 d', ms: 7 * 24 * HOUR, interval: '1h', bucketMs: HOUR },
  };
  const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const CHART_HEIGHT = 200;
  const DEVICES_REFRESH_MS = 10_000;
  const DASHBOARD_REFRESH_MS = 30_000;
  const ALARMS_REFRESH_MS = 10_000;
  const UNITS = { temperature: '°C', humidity: '%', pressure: 'hPa', battery: '%' };
  const ORDER = ['temperature', 'humidity', 'pressure', 'battery'];
  const COLORS = ['#e4572e', '#2f6fde', '#7b4fd6', '#1a9c5b', '#d98a04', '#0f8b8d', '#c2417a', '#4a5568'];

  const token = new URLSearchParams(location.search).get('token');
  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const num = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  const shortClock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const dayLabel = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric' });

  const state = {
    devices: [],
    total: 0,
    selected: null,
    /** the range picked above the charts (a key of RANGES) */
    range: '10m',
    /** 'raw': samples as points (10 min, or a long range without the series route); 'series': buckets */
    mode: 'raw',
    /** set once the server answered that it has no series route: long ranges use raw samples from then on */
    seriesUnavailable: false,
    /** bumped by every range or device change, so a late answer for an earlier view is dropped */
    view: 0,
    /** ts (ms) → { metric: value } for the selected device (raw mode) */
    points: new Map(),
    /** metric → { t: [ms], count: [], min: [], max: [], avg: [] }, buckets ascending (series mode) */
    series: new Map(),
    /** series mode: live samples received while the series loads (null once loaded) */
    pendingLive: null,
    /** metric → { value, ts } */
    latest: new Map(),
    charts: new Map(),
    /** when the fleet figures shown were computed (ms), 0 before the first answer */
    kpiComputedAt: 0,
  };

  // ---------------------------------------------------------------- helpers

  function ago(ts) {
    if (!ts) return '';
    const s = Math.max(0, (Date.now() - ts) / 1000);
    if (s < 2) return 'just now';
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  function activity(ts) {
    const age = Date.now() - ts;
    return age < 60_000 ? 'live' : age < 5 * 60_000 ? 'recent' : 'idle';
  }

  function metricOrder(a, b) {
    const ia = ORDER.indexOf(a) < 0 ? 99 : ORDER.indexOf(a);
    const ib = ORDER.indexOf(b) < 0 ? 99 : ORDER.indexOf(b);
    return ia - ib || a.localeCompare(b);
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  // ------------------------------------------------------ connection status

  function notice(text) {
    const box = $('notice');
    box.textContent = text || '';
    box.hidden = !text;
  }

  function setStatus(kind, text) {
    $('status').dataset.state = kind;
    $('status-text').textContent = text;
  }

  // ------------------------------------------------------------- WebSocket
  //
  // One request in flight at a time, chosen from what the page wants: leave
  // subscriptions that are no longer wanted, subscribe to the selected device,
  // then fetch the fleet figures if due. So clicking through ten devices sends
  // only what the last click needs, answers match requests trivially, and a
  // refused request is simply chosen again once the rate limit allows.

  const ANSWER_TIMEOUT_MS = 15_000;

  const conn = {
    ws: null,
    attempt: 0,
    everOpened: false,
    /** device ids the server has confirmed as subscribed on this connection */
    subscribed: new Set(),
    /** device ids the server refused as invalid: not asked again */
    refused: new Set(),
    /** the request waiting for its answer */
    awaiting: null,
    answerTimer: null,
    pausedUntil: 0,
    pumpTimer: null,
  };

  function wsUrl() {
    const url = new URL('ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    url.hash = '';
    if (token) url.searchParams.set('token', token);
    return url.toString();
  }

  function connect() {
    setStatus('connecting', 'connecting…');
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (error) {
      scheduleReconnect(`cannot connect (${error.message})`);
      return;
    }
    conn.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      conn.everOpened = true;
      conn.attempt = 0;
      if (Date.now() >= conn.pausedUntil) {
        setStatus('live', 'live');
        notice('');
      }
      pump();
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      onMessage(message);
    };
    ws.onclose = (event) => {
      if (conn.ws !== ws) return;
      conn.ws = null;
      conn.subscribed.clear();
      answered();
      let reason = opened ? 'connection lost' : 'cannot reach the server';
      if (event.code === 1008) reason = 'closed by the server (too many messages)';
      if (event.code === 1001) reason = 'server restarting';
      if (!conn.everOpened && !token) reason += ' (if the server sets WS_TOKEN, open this page with ?token=…)';
      scheduleReconnect(reason);
    };
  }

  function scheduleReconnect(reason) {
    const delay = Math.min(30_000, 1000 * 2 ** conn.attempt) * (0.8 + Math.random() * 0.4);
    conn.attempt++;
    const at = Date.now() + delay;
    const tick = () => {
      if (conn.ws) return;
      const left = Math.ceil((at - Date.now()) / 1000);
      if (left <= 0) {
        connect();
        return;
      }
      setStatus('offline', `offline: ${reason}; retrying in ${left} s`);
      setTimeout(tick, Math.min(1000, at - Date.now()));
    };
    tick();
  }

  // Retry at once when the network comes back or the tab is shown again.
  window.addEventListener('online', () => !conn.ws && connect());
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && !conn.ws && connect());

  function nextRequest() {
    for (const id of conn.subscribed) {
      if (id !== state.selected) return { event: 'unsubscribe', data: { deviceId: id } };
    }
    const id = state.selected;
    if (id && !conn.subscribed.has(id) && !conn.refused.has(id)) return { event: 'subscribe', data: { deviceId: id } };
    return null;
  }

  function pump() {
    clearTimeout(conn.pumpTimer);
    const ws = conn.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || conn.awaiting) return;
    const wait = conn.pausedUntil - Date.now();
    if (wait > 0) {
      conn.pumpTimer = setTimeout(pump, wait);
      return;
    }
    const message = nextRequest();
    if (!message) return;
    conn.awaiting = message;
    ws.send(JSON.stringify(message));
    // A server that stops answering gets a fresh connection.
    conn.answerTimer = setTimeout(() => ws.close(4000, 'no answer'), ANSWER_TIMEOUT_MS);
  }

  function answered() {
    const request = conn.awaiting;
    conn.awaiting = null;
    clearTimeout(conn.answerTimer);
    return request;
  }

  function onMessage({ event, data }) {
    if (event === 'sample') {
      if (data && data.deviceId === state.selected) addSample(data);
      return;
    }
    // Announcements, not answers: they must not complete the request in flight.
    if (event === 'alarm') {
      loadAlarms();
      return;
    }
    if (event === 'status') {
      // Unasked, for the subscribed device: its online/offline state changed.
      const item = data && deviceItems.get(data.deviceId);
      if (item) {
        item.status = data.status;
        item.statusSince = Date.parse(data.since);
        refreshTimes();
      }
      return;
    }
    const request = answered();
    if (event === 'error') {
      onError(data || {}, request);
    } else {
      if ($('status').dataset.state === 'limited') {
        setStatus('live', 'live');
        notice('');
      }
      if (event === 'subscribed') {
        conn.subscribed.add(data.deviceId);
        if (data.deviceId === state.selected) {
          if (state.mode === 'series') {
            // Now subscribed: reload the buckets, which then hold everything
            // stored so far (while subscribing, or while disconnected).
            loadSeries(data.deviceId);
            if (data.latest) addSample(data.latest); // for the latest values; the answer has it already
          } else {
            // Now subscribed: fetch what arrived since the newest point shown
            // (while subscribing, or while disconnected). Duplicates merge by time.
            const since = newestTs();
            if (data.latest) addSample(data.latest);
            loadHistory(data.deviceId, since);
          }
        }
      } else if (event === 'unsubscribed') {
        conn.subscribed.delete(data.deviceId);
      }
    }
    pump();
  }

  function onError(error, request) {
    if (error.code === 'RATE_LIMITED') {
      // Not processed: wait as told, then the same request is chosen again.
      const wait = Math.max(100, Number(error.retryAfterMs) || 1000) + 100;
      conn.pausedUntil = Date.now() + wait;
      setStatus('limited', 'rate limited');
      notice(`The server is rate-limiting this page; trying again in ${Math.ceil(wait / 1000)} s.`);
      return;
    }
    console.warn('dashboard: request refused', request, error);
    if (error.code === 'BAD_REQUEST' && request) {
      if (request.event === 'subscribe') conn.refused.add(request.data.deviceId);
      if (request.event === 'unsubscribe') conn.subscribed.delete(request.data.deviceId);
    } else {
      conn.pausedUntil = Date.now() + 2000; // a transient failure: try again shortly
    }
  }

  // ---------------------------------------------------------------- devices

  const deviceItems = new Map();

  async function loadDevices() {
    try {
      const page = await getJson('api/devices?limit=1000');
      state.devices = page.items;
      state.total = page.total;
      renderDevices();
    } catch (error) {
      console.warn('dashboard: device list', error);
    }
  }

  function renderDevices() {
    const filter = $('device-filter').value.trim().toLowerCase();
    const list = $('device-list');
    const shown = state.devices.filter((d) => d.id.toLowerCase().includes(filter));
    const keep = new Set(shown.map((d) => d.id));
    for (const [id, item] of deviceItems) {
      if (!keep.has(id)) {
        item.li.remove();
        deviceItems.delete(id);
      }
    }
    for (const device of shown) {
      let item = deviceItems.get(device.id);
      if (!item) {
        const li = el('li');
        const button = el('button');
        button.type = 'button';
        button.dataset.deviceId = device.id;
        const dot = el('span', 'activity');
        const seen = el('span', 'seen');
        button.append(dot, el('span', 'id', device.id), seen);
        button.addEventListener('click', () => select(device.id));
        li.append(button);
        item = { li, button, dot, seen };
        deviceItems.set(device.id, item);
      }
      item.lastSeen = Date.parse(device.lastSeen);
      if (item.status !== device.status) item.statusSince = undefined;
      item.status = device.status;
      list.append(item.li); // keeps the order of the answer (by id)
    }
    const count = state.total > state.devices.length ? `${state.devices.length} of ${state.total}` : `${state.total}`;
    $('device-count').textContent = count;
    refreshTimes();
  }

  function refreshTimes() {
    for (const [id, item] of deviceItems) {
      item.seen.textContent = ago(item.lastSeen);
      // Green/amber/grey by last message while online; red once the service says offline.
      item.dot.dataset.level = item.status === 'offline' ? 'offline' : activity(item.lastSeen);
      item.dot.title = item.status ? `${item.status}${item.statusSince ? ` since ${new Date(item.statusSince).toLocaleTimeString()}` : ''}` : '';
      item.button.setAttribute('aria-current', String(id === state.selected));
    }
    for (const card of $('latest').children) {
      card.querySelector('.when').textContent = ago(Number(card.dataset.ts));
    }
    if (state.kpiComputedAt) {
      const at = clock.format(new Date(state.kpiComputedAt));
      $('kpi-age').textContent = `Fleet figures as of ${at} (${ago(state.kpiComputedAt)}); they are recomputed every few minutes.`;
    }
    const newest = newestSeen();
    $('empty').hidden = newest > 0 || countPoints() > 0;
    const range = RANGES[state.range];
    const buckets = bucketsShown();
    const shown =
      state.mode === 'series' ? `${num.format(buckets)} ${buckets === 1 ? 'bucket' : 'buckets'} of ${range.interval}` : `${num.format(countPoints())} points`;
    const selected = state.selected ? deviceItems.get(state.selected) : undefined;
    const status = selected && selected.status ? `${selected.status} · ` : '';
    $('device-info').textContent = state.selected ? `${status}${shown} · last sample ${newest ? ago(newest) : '—'}` : '';
  }

  // ------------------------------------------------------- selected device

  function select(id) {
    if (id === state.selected) return;
    state.selected = id;
    state.latest = new Map();
    $('latest').replaceChildren();
    $('device-title').textContent = id;
    $('empty').textContent = 'Waiting for samples…';
    history.replaceState(null, '', `${location.search}#${encodeURIComponent(id)}`);
    showRange();
    pump(); // unsubscribes the previous device, subscribes to this one
  }

  // ------------------------------------------------------------ time range

  function setRange(key) {
    if (!RANGES[key] || key === state.range) return;
    state.range = key;
    try {
      localStorage.setItem('telemetry-hub.range', key);
    } catch {
      // storage disabled: the choice lasts until the page is left
    }
    showRange();
  }

  /** Empties the charts and loads the selected device's data for the current range. */
  function showRange() {
    state.view++;
    for (const button of document.querySelectorAll('#range button')) {
      button.setAttribute('aria-pressed', String(button.dataset.range === state.range));
    }
    const range = RANGES[state.range];
    state.mode = range.interval && !state.seriesUnavailable ? 'series' : 'raw';
    state.points = new Map();
    state.series = new Map();
    state.pendingLive = null;
    for (const chart of state.charts.values()) chart.plot.destroy();
    state.charts.clear();
    $('charts').replaceChildren();
    $('charts').dataset.points = '0';
    $('charts').dataset.samples = '0';
    $('charts').dataset.mode = state.mode;
    $('charts').dataset.range = state.range;
    rangeNote(state.mode === 'raw' && range.interval ? fallbackNote() : '');
    if (state.selected) {
      if (state.mode === 'series') loadSeries(state.selected);
      else loadHistory(state.selected);
    }
    refreshTimes();
  }

  function rangeNote(text) {
    $('range-note').textContent = text;
    $('range-note').hidden = !text;
  }

  function fallbackNote() {
    return `This server does not serve aggregated series: showing the newest raw samples of the last ${RANGES[state.range].label} (at most ${num.format(MAX_FALLBACK_POINTS)} readings).`;
  }

  /** Start (ms) of the bucket holding t: on the browser's clock, like the server's buckets in the same zone. */
  function bucketStart(t, bucketMs) {
    const offset = -new Date(t).getTimezoneOffset() * MINUTE;
    return Math.floor((t + offset) / bucketMs) * bucketMs - offset;
  }

  /** Loads the selected range as buckets from the series route (series mode). */
  async function loadSeries(id) {
    const view = state.view;
    const range = RANGES[state.range];
    const to = Date.now();
    // Live samples that arrive meanwhile wait here; a newer load replaces this one.
    const pending = [];
    state.pendingLive = pending;
    const query = new URLSearchParams({
      from: new Date(to - range.ms).toISOString(),
      to: new Date(to).toISOString(),
      interval: range.interval,
      tz: TIME_ZONE,
      agg: 'count,min,max,avg',
      fill: 'null',
    });
    let res;
    let answer;
    try {
      res = await fetch(`api/devices/${encodeURIComponent(id)}/series?${query}`, { headers: { accept: 'application/json' } });
      answer = await res.json().catch(() => ({}));
    } catch (error) {
      answer = { message: error.message };
    }
    if (view !== state.view || state.pendingLive !== pending) return;
    if (!res || !res.ok) {
      state.pendingLive = null;
      const message = String(answer.message || '');
      // A 404 of the route itself ("Cannot GET …", not "device … not found"):
      // a server without the series API. Raw samples from now on.
      if (res && res.status === 404 && /^Cannot /.test(message)) {
        state.seriesUnavailable = true;
        showRange();
      } else if (!res || res.status !== 404) {
        console.warn('dashboard: series', res ? res.status : 'no answer', message);
        fallBackToRaw(id, `Aggregated series failed to load (${res ? `HTTP ${res.status}` : message}): showing raw samples.`);
      }
      return; // an unknown device: nothing to draw
    }
    const series = new Map();
    for (const [name, columns] of Object.entries(answer.series || {})) {
      series.set(name, {
        t: columns.t.map((iso) => Date.parse(iso)),
        count: columns.count.slice(),
        min: columns.min.slice(),
        max: columns.max.slice(),
        avg: columns.avg.slice(),
      });
    }
    state.series = series;
    state.pendingLive = null;
    // Live delivery follows a commit within milliseconds, so a sample received
    // during the load whose time is before the query's end was stored before
    // the query ran and is in the answer; later ones are added.
    for (const sample of pending) if (sample.t >= to) foldSample(sample.t, sample.metrics);
    scheduleDraw();
  }

  /** This view only: raw samples instead of buckets, with a note saying why. */
  function fallBackToRaw(id, note) {
    state.mode = 'raw';
    $('charts').dataset.mode = 'raw';
    rangeNote(note);
    loadHistory(id);
  }

  const COLUMNS = ['t', 'count', 'min', 'max', 'avg'];

  /** Adds a live sample to its bucket (series mode): count, min, max and the running avg. */
  function foldSample(t, metrics) {
    const range = RANGES[state.range];
    const start = bucketStart(t, range.bucketMs);
    for (const [name, value] of Object.entries(metrics)) {
      if (typeof value !== 'number') continue;
      let s = state.series.get(name);
      if (!s) {
        s = { t: [], count: [], min: [], max: [], avg: [] };
        state.series.set(name, s);
      }
      let i = s.t.length - 1;
      while (i >= 0 && s.t[i] > start) i--;
      if (i >= 0 && s.t[i] === start) {
        const n = s.count[i] + 1;
        s.avg[i] = n === 1 ? value : s.avg[i] + (value - s.avg[i]) / n;
        s.min[i] = n === 1 ? value : Math.min(s.min[i], value);
        s.max[i] = n === 1 ? value : Math.max(s.max[i], value);
        s.count[i] = n;
        continue;
      }
      // A new bucket, after empty ones when the device was silent (so the line breaks there).
      const rows = [];
      if (i === s.t.length - 1 && i >= 0) for (let b = s.t[i] + range.bucketMs; b < start; b += range.bucketMs) rows.push([b, 0, null]);
      rows.push([start, 1, value]);
      const at = i + 1;
      rows.forEach(([b, count, v], k) => {
        s.t.splice(at + k, 0, b);
        s.count.splice(at + k, 0, count);
        s.min.splice(at + k, 0, v);
        s.max.splice(at + k, 0, v);
        s.avg.splice(at + k, 0, v);
      });
    }
    // Buckets that have left the range are dropped.
    const oldest = Date.now() - range.ms;
    for (const s of state.series.values()) {
      let cut = 0;
      while (cut < s.t.length && s.t[cut] < oldest) cut++;
      if (cut) for (const key of COLUMNS) s[key].splice(0, cut);
    }
  }

  /** Loads the device's samples since `sinceMs` (default: the whole window). */
  async function loadHistory(id, sinceMs) {
    const view = state.view;
    const windowMs = RANGES[state.range].ms;
    const from = new Date(Math.max(Date.now() - windowMs, sinceMs || 0)).toISOString();
    const limit = state.range === '10m' ? MAX_POINTS * 4 : 10_000;
    try {
      const { items } = await getJson(`api/devices/${encodeURIComponent(id)}/samples?from=${encodeURIComponent(from)}&limit=${limit}`);
      if (state.selected !== id || view !== state.view) return;
      const byTs = new Map();
      for (const { ts, metric, value } of items) {
        const metrics = byTs.get(ts) || {};
        metrics[metric] = value;
        byTs.set(ts, metrics);
      }
      for (const [ts, metrics] of byTs) addSample({ ts, metrics }, true);
      scheduleDraw();
    } catch (error) {
      console.warn('dashboard: history', error);
    }
  }

  function addSample({ ts, metrics }, quiet) {
    const t = typeof ts === 'number' ? ts : Date.parse(ts);
    if (!Number.isFinite(t) || !metrics) return;
    if (state.mode === 'series') {
      if (state.pendingLive) state.pendingLive.push({ t, metrics });
      else foldSample(t, metrics);
    } else {
      const row = state.points.get(t) || {};
      Object.assign(row, metrics);
      state.points.set(t, row);
    }
    for (const [name, value] of Object.entries(metrics)) {
      const current = state.latest.get(name);
      if (!current || current.ts <= t) state.latest.set(name, { value, ts: t, fresh: !quiet });
    }
    const item = deviceItems.get(state.selected);
    if (item && t > (item.lastSeen || 0)) item.lastSeen = t;
    if (!quiet) scheduleDraw();
  }

  function newestTs() {
    let newest = 0;
    for (const t of state.points.keys()) if (t > newest) newest = t;
    return newest;
  }

  /** Time of the newest sample seen in either mode. */
  function newestSeen() {
    let newest = newestTs();
    for (const { ts } of state.latest.values()) if (ts > newest) newest = ts;
    return newest;
  }

  /** Series mode: buckets with data in the fullest chart. */
  function bucketsShown() {
    let most = 0;
    for (const s of state.series.values()) most = Math.max(most, s.count.filter((n) => n > 0).length);
    return most;
  }

  function countPoints() {
    return Number($('charts').dataset.points) || 0;
  }

  function prune() {
    const newest = newestTs();
    const windowMs = RANGES[state.range].ms;
    const times = [...state.points.keys()].sort((a, b) => a - b);
    const cut = Math.max(times.length - (state.range === '10m' ? MAX_POINTS : MAX_FALLBACK_POINTS), 0);
    times.forEach((t, i) => {
      if (i < cut || t < newest - windowMs) state.points.delete(t);
    });
  }

  // ------------------------------------------------------------- drawing

  let drawPending = false;
  let lastDraw = 0;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    const wait = Math.max(0, 250 - (Date.now() - lastDraw));
    setTimeout(() => requestAnimationFrame(draw), wait);
  }

  function draw() {
    drawPending = false;
    lastDraw = Date.now();
    prune();
    renderLatest();
    renderCharts();
    refreshTimes();
  }

  function renderLatest() {
    const box = $('latest');
    const names = [...state.latest.keys()].sort(metricOrder);
    for (const name of names) {
      const { value, ts, fresh } = state.latest.get(name);
      let card = box.querySelector(`[data-metric="${CSS.escape(name)}"]`);
      if (!card) {
        card = el('div', 'metric-card');
        card.dataset.metric = name;
        const line = el('div');
        line.append(el('span', 'value'), el('span', 'unit', UNITS[name] || ''));
        card.append(el('div', 'name', name), line, el('div', 'when muted'));
        box.append(card);
      }
      if (card.dataset.value !== String(value) || card.dataset.ts !== String(ts)) {
        card.dataset.value = String(value);
        card.dataset.ts = String(ts);
        card.querySelector('.value').textContent = num.format(value);
        if (fresh) {
          card.classList.add('updated');
          requestAnimationFrame(() => requestAnimationFrame(() => card.classList.remove('updated')));
        }
      }
    }
    box.dataset.ts = String(newestSeen());
  }

  /** [x seconds[], y[]] for one metric, with a null where the device was silent. */
  function seriesOf(name, times) {
    const xs = [];
    const ys = [];
    const gaps = [];
    for (let i = 1; i < times.length; i++) gaps.push(times[i] - times[i - 1]);
    gaps.sort((a, b) => a - b);
    const median = gaps.length ? gaps[Math.floor(gaps.length / 2)] : 0;
    const gapMs = Math.max(10_000, median * 5);
    let previous;
    for (const t of times) {
      const value = state.points.get(t)[name];
      if (typeof value !== 'number') continue;
      if (previous !== undefined && t - previous > gapMs) {
        xs.push((previous + t) / 2000);
        ys.push(null);
      }
      xs.push(t / 1000);
      ys.push(value);
      previous = t;
    }
    return [xs, ys];
  }

  function chartWidth(node) {
    return Math.max(200, node.clientWidth - 8);
  }

  /** The colour as rgba with the given opacity (for the min/max band). */
  function translucent(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }

  function timeLabel(seconds) {
    const range = RANGES[state.range];
    const date = new Date(seconds * 1000);
    if (range.ms > 24 * HOUR && date.getHours() === 0 && date.getMinutes() === 0) return dayLabel.format(date);
    return (range.ms > 10 * MINUTE ? shortClock : clock).format(date);
  }

  /** Indices of values with no neighbour: a line cannot show them, so they get a dot. */
  function isolatedPoints(u, seriesIdx) {
    const ys = u.data[seriesIdx];
    const idxs = [];
    for (let i = 0; i < ys.length; i++) {
      if (ys[i] !== null && (i === 0 || ys[i - 1] === null) && (i === ys.length - 1 || ys[i + 1] === null)) idxs.push(i);
    }
    return idxs;
  }

  function createChart(name, index) {
    const node = el('div', 'chart');
    node.dataset.metric = name;
    const title = el('h3', '', name);
    if (UNITS[name]) title.append(' ', el('span', '', UNITS[name]));
    if (state.mode === 'series') title.append(' ', el('span', 'legend', `avg, min–max per ${RANGES[state.range].interval}`));
    node.append(title);
    $('charts').append(node);
    const color = COLORS[index % COLORS.length];
    const axis = { stroke: '#6b7588', grid: { stroke: '#eef1f5', width: 1 }, ticks: { show: false }, font: '11px system-ui, sans-serif' };
    const line = { label: name, stroke: color, width: 1.5, points: { show: false }, spanGaps: false };
    const edge = { stroke: translucent(color, 0.35), width: 1, points: { show: false }, spanGaps: false };
    const avg = { ...line, label: 'avg', points: { show: true, size: 5, fill: color, filter: isolatedPoints } };
    const series = state.mode === 'series' ? [{}, { ...edge, label: 'min' }, { ...edge, label: 'max' }, avg] : [{}, line];
    const plot = new uPlot(
      {
        width: chartWidth(node),
        height: CHART_HEIGHT,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        series,
        // The band between max (series 2) and min (series 1).
        bands: state.mode === 'series' ? [{ series: [2, 1], fill: translucent(color, 0.15) }] : [],
        axes: [
          { ...axis, size: 34, space: 60, values: (u, values) => values.map(timeLabel) },
          { ...axis, size: 60, values: (u, values) => values.map((v) => num.format(v)) },
        ],
      },
      series.map(() => []),
      node,
    );
    return { node, plot };
  }

  function chartFor(name, index) {
    let chart = state.charts.get(name);
    if (!chart) {
      chart = createChart(name, index);
      state.charts.set(name, chart);
    }
    return chart;
  }

  function renderCharts() {
    if (state.mode === 'series') {
      renderSeriesCharts();
      return;
    }
    const times = [...state.points.keys()].sort((a, b) => a - b);
    const names = new Set();
    for (const t of times) for (const name of Object.keys(state.points.get(t))) names.add(name);
    let total = 0;
    [...names].sort(metricOrder).forEach((name, index) => {
      const chart = chartFor(name, index);
      chart.plot.setData(seriesOf(name, times));
      const plotted = chart.plot.data[1].filter((v) => v !== null).length;
      chart.node.dataset.points = String(plotted);
      chart.node.dataset.samples = String(plotted);
      total += plotted;
    });
    $('charts').dataset.points = String(total);
    $('charts').dataset.samples = String(total);
  }

  /** Series mode: per metric, buckets with data as points; the samples they hold are counted too. */
  function renderSeriesCharts() {
    let points = 0;
    let samples = 0;
    [...state.series.keys()].sort(metricOrder).forEach((name, index) => {
      const s = state.series.get(name);
      const chart = chartFor(name, index);
      chart.plot.setData([s.t.map((t) => t / 1000), s.min, s.max, s.avg]);
      const plotted = s.avg.filter((v) => v !== null).length;
      const held = s.count.reduce((sum, n) => sum + n, 0);
      chart.node.dataset.points = String(plotted);
      chart.node.dataset.samples = String(held);
      // Starts (epoch ms) of the buckets with data, for tests and the curious.
      chart.node.dataset.buckets = s.t.filter((_, i) => s.count[i] > 0).join(',');
      points += plotted;
      samples += held;
    });
    $('charts').dataset.points = String(points);
    $('charts').dataset.samples = String(samples);
  }

  new ResizeObserver(() => {
    for (const { node, plot } of state.charts.values()) plot.setSize({ width: chartWidth(node), height: CHART_HEIGHT });
  }).observe($('charts'));

  // ------------------------------------------------------------- fleet KPIs

  /** The figures and the time they were computed (now minus the answer's Age). */
  async function loadDashboard() {
    try {
      const res = await fetch('api/dashboard/metrics', { headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`api/dashboard/metrics: HTTP ${res.status}`);
      const figures = await res.json();
      const ageS = Number(res.headers.get('age'));
      state.kpiComputedAt = Date.now() - (Number.isFinite(ageS) && ageS > 0 ? ageS * 1000 : 0);
      renderKpis(figures);
      refreshTimes();
    } catch (error) {
      console.warn('dashboard: fleet figures', error);
    }
  }

  function renderKpis(d) {
    $('kpi-devices').textContent = num.format(d.devices);
    $('kpi-active').textContent = num.format(d.activeDevices);
    $('kpi-samples').textContent = num.format(Math.round(d.samplesLastHour));
    $('kpi-rate').textContent = d.ingestRatePerSec.toFixed(1);
  }

  // ----------------------------------------------------------------- alarms

  async function loadAlarms() {
    try {
      const [active, acknowledged] = await Promise.all([getJson('api/alarms?status=active&limit=100'), getJson('api/alarms?status=acknowledged&limit=100')]);
      renderAlarms([...active.items, ...acknowledged.items].sort((a, b) => Date.parse(b.raisedAt) - Date.parse(a.raisedAt)));
    } catch (error) {
      console.warn('dashboard: alarms', error);
    }
  }

  function renderAlarms(alarms) {
    const section = document.querySelector('.alarms');
    section.hidden = alarms.length === 0;
    $('alarm-count').textContent = alarms.length ? `${alarms.length}` : '';
    const list = $('alarm-list');
    list.replaceChildren();
    for (const alarm of alarms) {
      const li = el('li');
      const badge = el('span', 'severity', alarm.severity);
      badge.dataset.severity = alarm.severity;
      const device = el('button', null, alarm.deviceId);
      device.addEventListener('click', () => select(alarm.deviceId));
      li.append(
        badge,
        device,
        el('span', null, `${alarm.metric} = ${num.format(alarm.value)}`),
        el('span', 'muted', `${alarm.status}, raised ${clock.format(new Date(alarm.raisedAt))}`),
      );
      list.append(li);
    }
  }

  // ------------------------------------------------------------------ start

  $('device-filter').addEventListener('input', renderDevices);
  try {
    const saved = localStorage.getItem('telemetry-hub.range');
    if (RANGES[saved]) state.range = saved;
  } catch {
    // storage disabled: start with 10 minutes
  }
  for (const button of document.querySelectorAll('#range button')) {
    button.addEventListener('click', () => setRange(button.dataset.range));
  }
  showRange();
  setInterval(loadDevices, DEVICES_REFRESH_MS);
  setInterval(loadDashboard, DASHBOARD_REFRESH_MS);
  setInterval(refreshTimes, 1000);
  setInterval(loadAlarms, ALARMS_REFRESH_MS);
  loadAlarms();

  const initial = decodeURIComponent(location.hash.slice(1));
  loadDevices().then(() => {
    if (initial) select(initial);
  });
  loadDashboard();
  connect();
})();
