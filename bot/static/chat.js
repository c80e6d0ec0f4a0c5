/* Qingting web chat: anonymous session, bubbles, quick replies, retries, WebSocket, quick exit.
   Plain ES2017, no dependencies, no external requests. */
(function () {
  'use strict';

  var KEY = 'qt.chat';
  var MAX_CHARS = 2000;
  var LANGS = ['zh-CN', 'zh-TW', 'en'];

  var UI = {
    'zh-CN': {
      title: '倾听', brand: '倾听', exit: '快速离开', exitTitle: '马上离开这个页面',
      logLabel: '聊天记录', optionsLabel: '可以点的回答', ended: '聊天已结束',
      restart: '重新开始', inputLabel: '写下你想说的话', placeholder: '在这里写…', send: '发送',
      sos: '有危险请打', police: '报警', ambulance: '急救', hotline: '热线',
      waiting: '老师正在赶来。你可以继续写，老师会看到。', human: '正在和老师聊天',
      teacher: '老师', sending: '发送中…', notSent: '没有发出去', resend: '再发一次',
      retrying: '网络好像不太好，正在重新发送…',
      connecting: '正在连接，请稍等…',
      empty: '还没有写字哦。',
      tooLong: '这段话有点长。可以分成几段，一段一段发。',
      badText: '这段话里有看不见的特殊符号，发不出去。删掉再试试？',
      closed: '这次聊天已经结束了。点“重新开始”就可以再聊。',
      lost: '刚才的聊天连不上了，我们重新开始吧。你写的话还留在输入框里。',
      generic: '出了点小问题，你的话没有发出去。请再试一次。有危险请打 110 或 120。',
      confirmSwitch: '换语言会开始一段新的聊天。要换吗？'
    },
    'zh-TW': {
      title: '傾聽', brand: '傾聽', exit: '快速離開', exitTitle: '馬上離開這個頁面',
      logLabel: '聊天紀錄', optionsLabel: '可以點的回答', ended: '聊天已結束',
      restart: '重新開始', inputLabel: '寫下你想說的話', placeholder: '在這裡寫…', send: '發送',
      sos: '有危險請打', police: '報警', ambulance: '急救', hotline: '熱線',
      waiting: '老師正在趕來。你可以繼續寫，老師會看到。', human: '正在和老師聊天',
      teacher: '老師', sending: '發送中…', notSent: '沒有發出去', resend: '再發一次',
      retrying: '網路好像不太好，正在重新發送…',
      connecting: '正在連線，請稍等…',
      empty: '還沒有寫字喔。',
      tooLong: '這段話有點長。可以分成幾段，一段一段發。',
      badText: '這段話裡有看不見的特殊符號，發不出去。刪掉再試試？',
      closed: '這次聊天已經結束了。點「重新開始」就可以再聊。',
      lost: '剛才的聊天連不上了，我們重新開始吧。你寫的話還留在輸入框裡。',
      generic: '出了點小問題，你的話沒有發出去。請再試一次。有危險請打 110 或 120。',
      confirmSwitch: '換語言會開始一段新的聊天。要換嗎？'
    },
    en: {
      title: 'Qingting', brand: 'Qingting', exit: 'Quick exit', exitTitle: 'Leave this page now',
      logLabel: 'Messages', optionsLabel: 'Answers you can tap', ended: 'This chat has ended',
      restart: 'Start again', inputLabel: 'Write what you want to say',
      placeholder: 'Write here…', send: 'Send',
      sos: 'In danger? Call', police: 'police', ambulance: 'ambulance', hotline: 'helpline',
      waiting: 'A person is coming. Keep writing if you like: they will read it.',
      human: 'You are talking with a person', teacher: 'Helper', sending: 'Sending…',
      notSent: 'Not sent', resend: 'Send again',
      retrying: 'The connection is weak. Trying again…',
      connecting: 'Connecting, one moment…',
      empty: 'You have not written anything yet.',
      tooLong: 'That is a long message. Could you send it in a few parts?',
      badText: 'There are hidden special characters in that message. Remove them and try again?',
      closed: 'This chat has ended. Tap "Start again" to talk again.',
      lost: 'We lost the last chat, so let us start again. What you wrote is still in the box.',
      generic: 'Something went wrong and your message was not sent. Please try again. ' +
        'In danger, call 110 or 120.',
      confirmSwitch: 'Changing the language starts a new chat. Change it?'
    }
  };

  // Retry delays (ms) for network errors and 5xx: the same client_message_id every time.
  var SEND_BACKOFF = [800, 1600, 3200, 6400, 12800];
  var WS_MAX_DELAY = 30000;

  var $ = function (id) { return document.getElementById(id); };
  var els = {};
  var state = null;       // {id, token, lang, mode, log:[{who,text,cid,status}], options, outbox}
  var sending = false;
  var leaving = false;
  var ws = null;
  var wsDelay = 1000;
  var wsTimer = null;
  var wsOpened = false;
  var createFailed = false; // the last try to make a session got a 4xx: Send tries again
  var generation = 0;     // bumps on every new session, so a stale request cannot win
  var modeEpoch = 0;      // bumps on every pushed mode: an HTTP answer sent before it is stale
  var syncSeq = 0;        // numbers the history fetches; an older answer never overwrites a newer
  var syncApplied = 0;
  var syncWanted = false; // a history fetch waits while a message is on its way (no duplicates)
  var liveCount = 0;      // replies pushed over the WebSocket so far, and the recent ones:
  var liveRecent = [];    // a push that lands while the history is fetched must not be lost

  function t(key) {
    var lang = (state && state.lang) || 'zh-CN';
    return (UI[lang] && UI[lang][key]) || UI['zh-CN'][key];
  }

  // ---- storage (sessionStorage: gone when the tab closes; cleared by quick exit) ----
  function save() {
    if (!state || leaving) return;
    try { sessionStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }
  function load() {
    try {
      var s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
      if (s && typeof s.id === 'string' && typeof s.token === 'string') {
        s.log = Array.isArray(s.log) ? s.log : [];
        s.options = Array.isArray(s.options) ? s.options : [];
        s.outbox = Array.isArray(s.outbox) ? s.outbox : [];
        if (LANGS.indexOf(s.lang) < 0) s.lang = 'zh-CN';
        return s;
      }
    } catch (e) { /* unreadable: start fresh */ }
    return null;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); })
      .join('');
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // ---- rendering ----
  function applyLang() {
    var lang = state ? state.lang : 'zh-CN';
    document.documentElement.lang = lang;
    document.title = t('title');
    Array.prototype.forEach.call(document.querySelectorAll('[data-i18n]'), function (el) {
      el.textContent = t(el.getAttribute('data-i18n'));
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-i18n-aria]'), function (el) {
      el.setAttribute('aria-label', t(el.getAttribute('data-i18n-aria')));
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-i18n-title]'), function (el) {
      el.title = t(el.getAttribute('data-i18n-title'));
    });
    els.text.placeholder = t('placeholder');
    Array.prototype.forEach.call(document.querySelectorAll('.lang'), function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute('data-lang') === lang));
    });
  }

  // Text as DOM nodes: lead codes highlighted, emergency numbers tappable. Never innerHTML.
  var TOKENS = /(QT-[A-Z0-9]{4,})|(^|[^0-9])(110|120|12355)(?![0-9])/g;
  function richText(parent, text) {
    var last = 0;
    var m;
    TOKENS.lastIndex = 0;
    while ((m = TOKENS.exec(text)) !== null) {
      var start = m.index;
      if (m[1]) {
        parent.appendChild(document.createTextNode(text.slice(last, start)));
        var code = document.createElement('span');
        code.className = 'lead-code';
        code.textContent = m[1];
        parent.appendChild(code);
      } else {
        start += m[2].length;
        parent.appendChild(document.createTextNode(text.slice(last, start)));
        var a = document.createElement('a');
        a.href = 'tel:' + m[3];
        a.textContent = m[3];
        parent.appendChild(a);
      }
      last = TOKENS.lastIndex;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderEntry(entry) {
    var li = document.createElement('li');
    li.className = 'bubble ' + (['me', 'bot', 'person', 'system'].indexOf(entry.who) < 0
      ? 'bot' : entry.who);
    if (entry.who === 'person') {
      var who = document.createElement('span');
      who.className = 'who';
      who.textContent = t('teacher');
      li.appendChild(who);
    }
    var body = document.createElement('span');
    body.className = 'text';
    richText(body, entry.text);
    li.appendChild(body);
    if (entry.cid) li.setAttribute('data-cid', entry.cid);
    if (entry.status) showStatus(li, entry);
    els.log.appendChild(li);
    return li;
  }

  function showStatus(li, entry) {
    var old = li.querySelector('.state');
    if (old) old.remove();
    var oldBtn = li.querySelector('.retry');
    if (oldBtn) oldBtn.remove();
    li.classList.toggle('failed', entry.status === 'failed');
    if (!entry.status) return;
    var s = document.createElement('span');
    s.className = 'state';
    s.textContent = entry.status === 'failed' ? t('notSent') : t('sending');
    li.appendChild(s);
    if (entry.status === 'failed' && state.outbox.length && state.outbox[0].cid === entry.cid) {
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'retry';
      b.textContent = t('resend');
      b.addEventListener('click', function () {
        if (!state.id) { retryCreate(); return; }
        setEntryStatus(entry.cid, 'sending');
        pump();
      });
      li.appendChild(b);
    }
  }

  function bubbleFor(cid) {
    return els.log.querySelector('li[data-cid="' + cid + '"]');
  }

  function setEntryStatus(cid, status) {
    for (var i = 0; i < state.log.length; i++) {
      var e = state.log[i];
      if (e.cid === cid) {
        e.status = status;
        var li = bubbleFor(cid);
        if (li) showStatus(li, e);
      }
    }
    save();
  }

  function addEntry(entry) {
    state.log.push(entry);
    renderEntry(entry);
    save();
    scrollDown();
  }

  function scrollDown() {
    els.chat.scrollTop = els.chat.scrollHeight;
  }

  function renderOptions() {
    els.options.textContent = '';
    if (state.mode === 'closed') return;
    state.options.forEach(function (o) {
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'option';
      b.textContent = o.label;
      b.addEventListener('click', function () { send(o.value, o.label); });
      els.options.appendChild(b);
    });
    scrollDown();
  }

  function setOptions(options) {
    state.options = (options || []).filter(function (o) {
      return o && typeof o.label === 'string' && typeof o.value === 'string';
    });
    renderOptions();
    save();
  }

  function setMode(mode) {
    if (['bot', 'waiting', 'human', 'closed'].indexOf(mode) < 0) return;
    var was = state.mode;
    state.mode = mode;
    document.body.setAttribute('data-mode', mode);
    var banner = mode === 'waiting' ? t('waiting') : mode === 'human' ? t('human') : '';
    els.banner.textContent = banner;
    els.banner.hidden = !banner;
    var closed = mode === 'closed';
    els.ended.hidden = !closed;
    els.endedText.hidden = false;
    els.text.disabled = closed;
    els.send.disabled = closed;
    if (closed || (mode === 'human' && was !== 'human')) setOptions([]);
    if (closed) stopWs();
    save();
    scrollDown(); // the banner or the end panel changed the height of the message area
  }

  function showNotice(text) {
    els.notice.textContent = text || '';
    els.notice.hidden = !text;
  }

  function renderAll() {
    applyLang();
    els.log.textContent = '';
    state.log.forEach(renderEntry);
    renderOptions();
    setMode(state.mode || 'bot');
    scrollDown();
  }

  function showReplies(replies, who) {
    var last = null;
    (replies || []).forEach(function (r) {
      if (!r || typeof r.text !== 'string') return;
      addEntry({ who: who, text: r.text });
      last = r;
    });
    return last;
  }

  // ---- HTTP ----
  function api(method, path, body, token) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, 20000);
    var headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
      cache: 'no-store',
      credentials: 'omit'
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        return { status: res.status, data: data };
      });
    }).finally(function () { clearTimeout(timer); });
  }

  function errorCode(res) {
    return res.data && res.data.error && res.data.error.code;
  }

  // Start a new session. carry: outbox items (with their bubbles) written before it existed.
  async function newSession(lang, notice, carry) {
    var mine = ++generation;
    stopWs();
    leaving = false;
    createFailed = false;
    var draft = els.text.value;
    state = { id: '', token: '', lang: lang, mode: 'bot', log: [], options: [], outbox: [] };
    try { sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ }
    renderAll();
    (carry || []).forEach(function (c) {
      state.outbox.push(c.item);
      addEntry({ who: 'me', text: c.text, cid: c.item.cid, status: 'sending' });
    });
    els.text.value = draft;
    showNotice(notice || '');
    setBusy(true);
    for (var attempt = 0; ; attempt++) {
      var res = null;
      try {
        res = await api('POST', '/api/chat/sessions', { script: 'intake', lang: lang });
      } catch (e) { res = null; }
      if (leaving || mine !== generation) return;
      if (res && res.status === 201 && res.data.session_id) {
        state.id = res.data.session_id;
        state.token = res.data.token;
        setBusy(false);
        if (!notice) showNotice('');
        // The greeting goes above anything the child wrote while the session was being made.
        var early = state.log;
        state.log = [];
        els.log.textContent = '';
        var last = showReplies(res.data.replies, 'bot');
        early.forEach(addEntry);
        setOptions(last && !state.outbox.length ? last.options : []);
        save();
        connectWs();
        pump();
        return;
      }
      if (res && res.status >= 400 && res.status < 500 && res.status !== 408 &&
          res.status !== 429) {
        setBusy(false);
        state.outbox.forEach(function (i) { setEntryStatus(i.cid, 'failed'); });
        showNotice(t('generic'));
        // No session, so Send cannot work: offer a fresh start (keeping what was written).
        els.ended.hidden = false;
        els.endedText.hidden = true;
        createFailed = true;
        return;
      }
      showNotice(t('connecting'));
      await sleep(Math.min(1000 * Math.pow(2, attempt), 15000));
    }
  }

  // Try to create the session again, keeping the messages queued for it.
  function retryCreate() {
    var carry = state.outbox.map(function (item) {
      var shown = state.log.filter(function (e) { return e.cid === item.cid; })[0];
      return { item: item, text: shown ? shown.text : item.text };
    });
    newSession(state.lang, '', carry);
  }

  function fetchSession() {
    return api('GET', '/api/chat/sessions/' + encodeURIComponent(state.id), undefined,
      state.token);
  }

  // Is the saved session still valid? 401/404 means the id or token is no longer accepted.
  async function sessionAlive() {
    try {
      var res = await fetchSession();
      return res.status !== 401 && res.status !== 404;
    } catch (e) {
      return true; // offline: keep the session, sends will retry
    }
  }

  // May a mode read over HTTP (request sent at modeEpoch epoch) replace the one shown? Not when
  // a mode was pushed since (it is newer), and a slow answer never turns "with a person" back
  // into "waiting" (the socket says so when a volunteer really leaves).
  function httpModeApplies(mode, epoch) {
    if (mode === 'closed') return true;
    if (state.mode === 'human' && mode === 'waiting') return false;
    return epoch === modeEpoch;
  }

  var WHO = { child: 'me', bot: 'bot', volunteer: 'person', system: 'system' };

  // Rebuild the log and the mode from the server's copy of the conversation: what was pushed
  // while the socket was down (a volunteer's words, the closing message) appears this way.
  async function resync() {
    if (!state || !state.id || leaving) return;
    if (sending) { syncWanted = true; return; } // pump() calls again when the message is in
    syncWanted = false;
    var mine = generation;
    var seq = ++syncSeq;
    var epoch = modeEpoch;
    var mark = liveCount;
    var res;
    try { res = await fetchSession(); } catch (e) { return; } // offline: the next open retries
    if (leaving || mine !== generation || !state || seq < syncApplied) return;
    if (sending) { syncWanted = true; return; }
    syncApplied = seq;
    if (res.status === 401 || res.status === 404) {
      await newSession(state.lang, t('lost'));
      return;
    }
    if (res.status !== 200 || !res.data || !Array.isArray(res.data.messages)) return;
    rebuild(res.data.messages, liveRecent.filter(function (l) { return l.n >= mark; }));
    if (httpModeApplies(res.data.mode, epoch)) setMode(res.data.mode);
  }

  function rebuild(messages, live) {
    var log = [];
    var offered = [];
    var lastOptions = [];
    messages.forEach(function (m) {
      if (!m || typeof m.text !== 'string') return;
      var who = WHO[m.from] || 'bot';
      var text = m.text;
      if (who === 'me') {
        // A tapped answer is stored as its value; show the label the child saw.
        offered.forEach(function (o) { if (o && o.value === text && o.label) text = o.label; });
        lastOptions = [];
      } else {
        offered = Array.isArray(m.options) ? m.options : [];
        lastOptions = offered;
      }
      log.push({ who: who, text: text });
    });
    // Pushed while the answer was on its way and not in it yet: keep it.
    var tail = log.slice(-10).map(function (e) { return e.text; });
    live.forEach(function (l) {
      if (tail.indexOf(l.entry.text) < 0) log.push({ who: l.entry.who, text: l.entry.text });
    });
    // Messages not yet accepted by the server stay, with their state, at the end.
    state.outbox.forEach(function (item) {
      var shown = state.log.filter(function (e) { return e.cid === item.cid; })[0];
      log.push({ who: 'me', text: shown ? shown.text : item.text, cid: item.cid,
        status: (shown && shown.status) || 'sending' });
    });
    state.log = log;
    els.log.textContent = '';
    log.forEach(renderEntry);
    setOptions(state.outbox.length ? [] : lastOptions);
    save();
    scrollDown();
  }

  function setBusy(busy) {
    els.typing.hidden = !busy;
    if (busy) scrollDown();
  }

  function send(text, label) {
    if (!state || state.mode === 'closed') return false;
    var clean = String(text).trim();
    if (!clean) { showNotice(t('empty')); return false; }
    if (clean.length > MAX_CHARS) { showNotice(t('tooLong')); return false; }
    showNotice('');
    var cid = newId();
    var item = { cid: cid, text: clean, typed: label === undefined };
    state.outbox.push(item);
    setOptions([]);
    addEntry({ who: 'me', text: label === undefined ? clean : label, cid: cid, status: 'sending' });
    if (!state.id) {
      // The session is still being made (or could not be): it goes out once it exists.
      if (createFailed) retryCreate();
      return true;
    }
    pump();
    return true;
  }

  // One message at a time, in order; a failed one blocks the queue until it is re-sent.
  async function pump() {
    if (sending) return;
    sending = true;
    try {
      while (state && state.id && state.outbox.length && !leaving) {
        var item = state.outbox[0];
        var sessionId = state.id;
        var epoch = modeEpoch;
        setBusy(true);
        var res = await deliver(item);
        if (!state || state.id !== sessionId || leaving) return;
        if (res === null) {                  // still failing after the retries
          setEntryStatus(item.cid, 'failed');
          showNotice(t('generic'));
          return;
        }
        state.outbox.shift();
        if (res.status === 200) {
          setEntryStatus(item.cid, '');
          showNotice('');
          // HTTP answers come from the service (script, notices); volunteers speak over the WS.
          var last = showReplies(res.data.replies, 'bot');
          setOptions(last ? last.options : []);
          // A mode pushed while this answer was on its way is newer: a slow answer must not
          // turn "with a person" back into "waiting".
          if (httpModeApplies(res.data.mode || 'bot', epoch)) setMode(res.data.mode || 'bot');
          continue;
        }
        setEntryStatus(item.cid, 'failed');
        var code = errorCode(res);
        if (res.status === 401 || res.status === 404) {
          var draft = state.outbox.concat([item]).filter(function (i) { return i.typed; })
            .map(function (i) { return i.text; }).join('\n');
          els.text.value = draft;
          await newSession(state.lang, t('lost'));
          return;
        }
        if (code === 'conversation_closed') {
          state.outbox = [];
          setMode('closed');
          showNotice(t('closed'));
          return;
        }
        if (item.typed && !els.text.value) els.text.value = item.text;
        showNotice(code === 'empty_text' ? t('empty')
          : (code === 'text_too_long' || code === 'body_too_large') ? t('tooLong')
            : code === 'invalid_text' ? t('badText') : t('generic'));
        save();
      }
    } finally {
      sending = false;
      setBusy(false);
      save();
      if (syncWanted) resync();
    }
  }

  // POST one message; retry network errors and 5xx with the SAME client_message_id.
  async function deliver(item) {
    for (var attempt = 0; attempt <= SEND_BACKOFF.length; attempt++) {
      try {
        var res = await api('POST', '/api/chat/sessions/' + encodeURIComponent(state.id) +
          '/messages', { text: item.text, client_message_id: item.cid }, state.token);
        if (res.status < 500 && res.status !== 429) return res;
      } catch (e) { /* network error or timeout: retry */ }
      if (leaving || attempt === SEND_BACKOFF.length) break;
      showNotice(t('retrying'));
      await sleep(SEND_BACKOFF[attempt]);
    }
    return null;
  }

  // ---- WebSocket: replies that arrive later (a volunteer, reminders) ----
  function wsPath() {
    return '/api/chat/sessions/' + encodeURIComponent(state.id) + '/ws?token=' +
      encodeURIComponent(state.token);
  }

  function connectWs() {
    clearTimeout(wsTimer);
    if (ws) { // never two sockets for one page
      var old = ws;
      ws = null;
      try { old.close(); } catch (e) { /* ignore */ }
    }
    if (!state || !state.id || state.mode === 'closed' || leaving) return;
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    var sock = new WebSocket(proto + location.host + wsPath());
    ws = sock;
    wsOpened = false;
    sock.onopen = function () {
      wsOpened = true;
      wsDelay = 1000;
      document.body.setAttribute('data-ws', 'open');
      resync(); // catch up on whatever was pushed while there was no socket
    };
    sock.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || !state) return;
      if (ws !== sock) return;
      if (msg.type === 'reply' && typeof msg.text === 'string') {
        var entry = { who: state.mode === 'human' ? 'person' : 'bot', text: msg.text };
        liveRecent.push({ n: liveCount++, entry: entry });
        if (liveRecent.length > 50) liveRecent.shift();
        addEntry(entry);
        if (msg.options && msg.options.length) setOptions(msg.options);
      } else if (msg.type === 'mode') {
        modeEpoch++;
        setMode(msg.mode);
        resync(); // so the labels follow the server
      } else if (msg.type === 'bus.resync') {
        resync(); // the server's bus lost events: the stored conversation is the truth
      }
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      document.body.setAttribute('data-ws', 'closed');
      if (leaving || !state || state.mode === 'closed') return;
      var opened = wsOpened;
      var delay = wsDelay + Math.floor(Math.random() * 500);
      wsDelay = Math.min(wsDelay * 2, WS_MAX_DELAY);
      var mine = generation;
      wsTimer = setTimeout(async function () {
        if (!opened) {
          var alive = await sessionAlive();
          if (mine !== generation || leaving) return; // a new session began meanwhile
          if (!alive) {
            await newSession(state.lang, t('lost'));
            return;
          }
        }
        if (mine !== generation || ws) return;
        connectWs();
      }, delay);
    };
  }

  function stopWs() {
    clearTimeout(wsTimer);
    if (ws) {
      var s = ws;
      ws = null;
      try { s.close(); } catch (e) { /* ignore */ }
    }
    wsDelay = 1000;
  }

  // ---- quick exit: leave no way back ----
  function quickExit() {
    leaving = true;
    try { sessionStorage.clear(); } catch (e) { /* ignore */ }
    stopWs();
    document.body.textContent = '';
    location.replace('/exit');
  }

  // ---- wiring ----
  function autoGrow() {
    els.text.style.height = 'auto';
    els.text.style.height = Math.min(els.text.scrollHeight + 4, window.innerHeight * 0.3) + 'px';
  }

  async function start() {
    ['log', 'chat', 'options', 'typing', 'banner', 'notice', 'ended', 'restart', 'composer',
      'text', 'send', 'exit'].forEach(function (id) { els[id] = $(id); });
    els.endedText = els.ended.querySelector('p');

    els.exit.addEventListener('click', quickExit);
    els.composer.addEventListener('submit', function (e) {
      e.preventDefault();
      if (send(els.text.value)) {
        els.text.value = '';
        autoGrow();
      }
    });
    els.text.addEventListener('keydown', function (e) {
      // Enter sends; Shift+Enter is a new line; Enter that confirms a pinyin IME word does not.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        els.composer.requestSubmit ? els.composer.requestSubmit()
          : els.composer.dispatchEvent(new Event('submit', { cancelable: true }));
      }
    });
    els.text.addEventListener('input', autoGrow);
    els.restart.addEventListener('click', function () {
      if (createFailed) { retryCreate(); return; } // keep what was queued for it
      els.text.value = '';
      newSession(state ? state.lang : 'zh-CN');
    });
    Array.prototype.forEach.call(document.querySelectorAll('.lang'), function (b) {
      b.addEventListener('click', function () {
        var lang = b.getAttribute('data-lang');
        if (!state || lang === state.lang) return;
        var talked = state.log.some(function (e) { return e.who === 'me'; });
        if (talked && state.mode !== 'closed' && !window.confirm(UI[lang].confirmSwitch)) return;
        els.text.value = '';
        newSession(lang);
      });
    });

    var saved = load();
    if (!saved) {
      await newSession('zh-CN');
      return;
    }
    state = saved;
    renderAll();
    var mine = generation;
    var alive = await sessionAlive();
    if (mine !== generation || leaving) return; // the child switched language meanwhile
    if (!alive) {
      await newSession(state.lang, t('lost'));
      return;
    }
    connectWs();
    state.log.forEach(function (e) {
      if (e.status === 'failed' && state.outbox.length && state.outbox[0].cid === e.cid) {
        e.status = 'sending';
        var li = bubbleFor(e.cid);
        if (li) showStatus(li, e);
      }
    });
    pump(); // a message the last page did not finish sending goes out with its same id
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
