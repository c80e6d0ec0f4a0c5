/* Qingting volunteer console: login, live queue over a WebSocket, accept, relay, hits, leads.
   Plain ES2017, no dependencies, no external requests; uses only /api/console/*.
   Text from the server is always set with textContent, never parsed as HTML. */
(function () {
  'use strict';

  var RISK = { none: '无', routine: '一般', urgent: '紧急', imminent: '危急' };
  var CATEGORY = {
    suicide_self_harm: '自杀/自伤', sexual_abuse: '性侵害', physical_abuse: '身体伤害',
    neglect_abandonment: '忽视/遗弃', bullying: '欺凌', online_harm: '网络伤害',
    other_rights: '其他权益'
  };
  var LEAD_CATEGORY = {
    criminal: '刑事', civil: '民事', administrative: '行政', public_interest: '公益诉讼',
    consultation: '咨询'
  };
  var LEAD_STATE = {
    accepted: '受理', dispatched: '派单', in_hand: '办理', replied: '答复', closed: '办结',
    followed_up: '回访', evaluated: '评价'
  };
  var CHANNEL = { web: '网页', wechat: '微信', telegram: 'Telegram' };
  var MODE = { bot: '机器人', waiting: '等待中', human: '志愿者', closed: '已结束' };
  var SLOT = {
    about: '关于谁', kind: '什么事', story: '发生了什么', question: '孩子的问题',
    when: '什么时候', where: '大概在哪里', district: '区县', lead_code: '线索编号'
  };
  var HIDDEN_SLOTS = { summary_text: true };
  var VERDICT = { confirmed: '属实', false_alarm: '误报' };
  var UNDELIVERED = {
    reply_window_closed: '微信 48 小时回复窗口已关闭，孩子再发消息前，回复送不到。',
    reply_quota_used: '微信回复次数已用完，孩子再发消息前，回复送不到。',
    send_failed: '发送到孩子的渠道失败。'
  };
  var WS_MAX_DELAY = 30000;
  var PING_EVERY = 20000;

  // Counters the browser test reads to know the offer alert ran (sound, notification).
  var probe = { offers: 0, sound: 0, notification: 0, notificationError: '' };
  window.qtConsole = probe;

  var $ = QT.$;
  var el = QT.el;
  var clear = QT.clear;
  var show = QT.show;
  var parseTime = QT.parseTime;
  var toast = QT.toaster(6000);
  var csrf = '';
  var me = null;            // {id, username, role}
  var ws = null;
  var wsDelay = 1000;
  var wsTimer = null;
  var pingTimer = null;
  var everOpened = false;
  var loggedIn = false;
  var presence = 'available';
  var queue = [];
  var alerted = {};         // conversation id -> {escalated, imminent} at the last alert
  var offered = {};         // conversation id -> true while the card is highlighted
  var mine = [];
  var unread = {};
  var users = [];
  var canned = {};          // lang -> list
  var open = null;          // {id, conv, seen: {msgId: true}}
  var refreshTimer = null;
  var queueTimer = null;
  var audio = null;
  var undelivered = {};     // message id -> true: stored but the child's channel refused it
  var accepting = {};       // conversation id -> true while my own accept is in flight

  // ---- small helpers ----
  function waited(since) {
    var ms = Date.now() - parseTime(since);
    if (!(ms >= 0)) return '';
    var s = Math.floor(ms / 1000);
    var m = Math.floor(s / 60);
    var h = Math.floor(m / 60);
    if (h) return h + ' 小时 ' + (m % 60) + ' 分';
    if (m) return m + ' 分 ' + (s % 60) + ' 秒';
    return s + ' 秒';
  }
  function clock(s) { return QT.clock(s, false); }
  function shortId(id) { return String(id).slice(0, 8); }

  var api = QT.makeApi({
    token: function () { return csrf; },
    expired: function () { if (loggedIn) sessionEnded('登录已过期，请重新登录。'); }
  });

  // ---- login / logout ----
  async function init() {
    bindUi();
    await QT.resume(api, start);
  }

  function start(user, token) {
    me = user;
    csrf = token;
    loggedIn = true;
    $('me').textContent = user.username + (user.role === 'supervisor' ? '（督导）' : '');
    QT.view('app');
    setPresence('available', false);
    connect();
    loadAll();
  }

  async function logout() {
    await api('POST', '/api/console/logout');
    sessionEnded('');
  }

  function sessionEnded(message) {
    loggedIn = false;
    csrf = '';
    me = null;
    clearTimeout(wsTimer);
    clearInterval(pingTimer);
    if (ws) { try { ws.close(); } catch (e) { /* already closed */ } }
    ws = null;
    queue = []; mine = []; offered = {}; alerted = {}; open = null;
    renderQueue(); renderMine(); closePanel();
    QT.showLogin(message);
  }

  // ---- WebSocket: offers, queue changes, live messages ----
  function connect() {
    if (!loggedIn) return;
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/console/ws';
    var sock;
    try { sock = new WebSocket(url); } catch (e) { return retry(); }
    ws = sock;
    sock.onopen = function () {
      if (ws !== sock) return;
      wsDelay = 1000;
      document.body.setAttribute('data-ws', 'open');
      $('conn').textContent = '已连接';
      $('conn').className = 'conn ok';
      clearInterval(pingTimer);
      pingTimer = setInterval(function () {
        if (sock.readyState === 1) sock.send('ping');
      }, PING_EVERY);
      if (everOpened) loadAll(); // we may have missed events while disconnected
      everOpened = true;
    };
    sock.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      onEvent(msg);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      clearInterval(pingTimer);
      document.body.setAttribute('data-ws', 'closed');
      $('conn').textContent = '连接断开，正在重连…';
      $('conn').className = 'conn bad';
      retry();
    };
  }

  function retry() {
    if (!loggedIn) return;
    clearTimeout(wsTimer);
    var delay = wsDelay + Math.floor(Math.random() * 500);
    wsDelay = Math.min(wsDelay * 2, WS_MAX_DELAY);
    wsTimer = setTimeout(async function () {
      // A refused upgrade looks like a plain close: ask whether we are still logged in.
      var r = await api('GET', '/api/console/me');
      if (r.ok) { csrf = r.data.csrf_token; connect(); }
      else if (r.status !== 401) retry();
    }, delay);
  }

  function onEvent(msg) {
    // The bus's own resync event carries only {"topic": "bus.resync", "reason"}: no "type".
    if (msg.topic === 'bus.resync') { loadAll(); return; }
    switch (msg.type) {
      case 'hello':
        syncPresence();
        break;
      case 'handoff.offered':
      case 'handoff.escalated':
        onOffer(msg.conversation, !!msg.escalated || msg.type === 'handoff.escalated');
        break;
      case 'queue.changed':
        scheduleQueue();
        break;
      case 'message':
        onMessage(msg.conversation_id, msg.message);
        break;
      case 'conversation.assigned':
        onAssigned(msg.conversation);
        break;
      case 'conversation.released':
      case 'conversation.closed':
        onEnded(msg.conversation, msg.type);
        break;
      case 'delivery.failed':
        onUndelivered(msg.conversation_id, msg.message_id);
        break;
      case 'bus.resync':
        loadAll();
        break;
      default:
        break;
    }
  }

  function loadAll() {
    loadQueue();
    loadMine();
    if (open) refreshOpen();
    if (!$('leads-view').hidden) loadLeads();
  }

  // ---- offer alert: a short beep, a desktop notification, a highlighted card ----
  function unlockAudio() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      if (!audio) audio = new Ctx();
      if (audio.state === 'suspended') audio.resume();
    } catch (e) { audio = null; }
  }

  function beep(urgent) {
    unlockAudio();
    if (!audio) return;
    try {
      var t0 = audio.currentTime;
      [0, 0.22].forEach(function (offset) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.type = 'sine';
        osc.frequency.value = urgent ? 988 : 784;
        gain.gain.setValueAtTime(0.0001, t0 + offset);
        gain.gain.exponentialRampToValueAtTime(0.25, t0 + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t0 + offset + 0.18);
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(t0 + offset);
        osc.stop(t0 + offset + 0.2);
      });
      probe.sound += 1;
    } catch (e) { /* no sound: the highlight and the notification still show */ }
  }

  function askNotifications() {
    if (!('Notification' in window) || Notification.permission !== 'default') return;
    try { Notification.requestPermission(); } catch (e) { /* old browsers */ }
  }

  function notify(card) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      var n = new Notification('倾听：有孩子在等待', {
        body: '风险：' + (RISK[card.risk_level] || card.risk_level) +
          (card.categories && card.categories.length ? ' · ' + categories(card.categories) : '') +
          (card.escalated ? ' · 已超时' : ''),
        tag: 'qt-' + card.id,
        requireInteraction: card.risk_level === 'imminent'
      });
      n.onclick = function () { window.focus(); n.close(); };
      probe.notification += 1;
    } catch (e) {
      probe.notificationError = String(e);
    }
  }

  function onOffer(card, escalated) {
    if (!card || !card.id) return;
    probe.offers += 1;
    offered[card.id] = true;
    var before = alerted[card.id];
    var imminent = card.risk_level === 'imminent';
    // Ring again when the offer grows more serious: escalated, or the child now in danger.
    if (before === undefined || (escalated && !before.escalated) || (imminent && !before.imminent)) {
      alerted[card.id] = { escalated: escalated, imminent: imminent };
      beep(card.risk_level === 'imminent' || escalated);
      notify(Object.assign({}, card, { escalated: escalated || card.escalated }));
    }
    var i = indexOf(queue, card.id);
    if (i < 0) queue.push(card); else queue[i] = Object.assign({}, queue[i], card);
    renderQueue();
    scheduleQueue(); // the server's order is the truth
  }

  // ---- queue ----
  function indexOf(list, id) {
    for (var i = 0; i < list.length; i++) if (list[i].id === id) return i;
    return -1;
  }
  function categories(list) {
    return list.map(function (c) { return CATEGORY[c] || c; }).join('、');
  }

  function scheduleQueue() {
    clearTimeout(queueTimer);
    queueTimer = setTimeout(loadQueue, 150);
  }

  async function loadQueue() {
    var r = await api('GET', '/api/console/queue');
    if (!r.ok) return;
    queue = r.data.queue || [];
    var ids = {};
    queue.forEach(function (c) { ids[c.id] = true; });
    Object.keys(offered).forEach(function (id) { if (!ids[id]) delete offered[id]; });
    Object.keys(alerted).forEach(function (id) { if (!ids[id]) delete alerted[id]; });
    renderQueue();
  }

  function riskBadge(level) {
    return el('span', { className: 'risk risk-' + level, text: RISK[level] || level });
  }

  function renderQueue() {
    var list = $('queue');
    clear(list);
    queue.forEach(function (c, i) {
      var li = el('li', {
        className: 'card risk-' + c.risk_level + (offered[c.id] ? ' offered' : '') +
          (c.escalated ? ' escalated' : ''),
        'data-id': c.id
      }, [
        el('div', { className: 'card-top' }, [
          el('span', { className: 'pos', text: '#' + (c.position || i + 1) }),
          riskBadge(c.risk_level),
          c.escalated ? el('span', { className: 'flag', text: '已超时升级' }) : null,
          el('span', { className: 'chan', text: CHANNEL[c.channel] || c.channel })
        ]),
        el('div', { className: 'cats', text: c.categories && c.categories.length
          ? categories(c.categories) : '（未分类）' }),
        el('div', { className: 'card-bottom' }, [
          el('span', { className: 'wait', 'data-since': c.waiting_since || '',
            text: c.waiting_since ? '已等待 ' + waited(c.waiting_since) : '' }),
          el('button', { type: 'button', className: 'primary accept', text: '接单',
            'aria-label': '接单：' + (RISK[c.risk_level] || '') + ' ' + shortId(c.id),
            onclick: function (ev) { accept(c.id, ev.currentTarget); } })
        ])
      ]);
      list.appendChild(li);
    });
    $('queue-count').textContent = String(queue.length);
    show($('queue-empty'), queue.length === 0);
    var n = Object.keys(offered).length;
    document.title = (n ? '(' + n + ') 有孩子在等待 · ' : '') + '倾听 · 志愿者控制台';
  }

  async function accept(id, button) {
    if (button) button.disabled = true;
    accepting[id] = true;
    var r = await api('POST', '/api/console/conversations/' + encodeURIComponent(id) + '/accept');
    delete offered[id];
    setTimeout(function () { delete accepting[id]; }, 5000);
    if (r.ok) {
      var i = indexOf(queue, id);
      if (i >= 0) queue.splice(i, 1);
      renderQueue();
      await loadMine();
      openConversation(id);
    } else if (r.status === 409) {
      var j = indexOf(queue, id);
      if (j >= 0) queue.splice(j, 1);
      renderQueue();
      toast('已被其他志愿者接走', 'warn');
      scheduleQueue();
    } else {
      if (button) button.disabled = false;
      toast('接单失败：' + r.message, 'warn');
    }
  }

  // ---- presence ----
  function setPresence(status, send) {
    presence = status;
    var b = $('presence');
    b.setAttribute('data-status', status);
    b.setAttribute('aria-pressed', status === 'available' ? 'true' : 'false');
    b.textContent = status === 'available' ? '接单中' : '暂离';
    if (send) {
      api('POST', '/api/console/presence', { status: status }).then(function (r) {
        if (!r.ok) toast('状态没有改成功：' + r.message, 'warn');
      });
    }
  }

  // After (re)connecting: keep a chosen "away", else show what the server has (another tab
  // of the same volunteer may have set it).
  async function syncPresence() {
    if (presence === 'away') { setPresence('away', true); return; }
    await loadUsers();
    for (var i = 0; i < users.length; i++) {
      if (me && users[i].id === me.id && (users[i].status === 'away' || users[i].status === 'available')) {
        setPresence(users[i].status, false);
      }
    }
  }

  // ---- my conversations ----
  async function loadMine() {
    var r = await api('GET', '/api/console/conversations');
    if (!r.ok) return;
    mine = r.data.conversations || [];
    renderMine();
  }

  function renderMine() {
    var list = $('mine');
    clear(list);
    mine.forEach(function (c) {
      var li = el('li', {}, [
        el('button', {
          type: 'button', 'data-id': c.id,
          className: 'mine-item' + (open && open.id === c.id ? ' current' : '') +
            (unread[c.id] ? ' unread' : ''),
          onclick: function () { openConversation(c.id); }
        }, [
          riskBadge(c.risk_level),
          el('span', { className: 'cid', text: shortId(c.id) }),
          el('span', { className: 'chan', text: (CHANNEL[c.channel] || c.channel) + ' · ' +
            (MODE[c.mode] || c.mode) }),
          unread[c.id] ? el('span', { className: 'dot', 'aria-label': '有新消息' }) : null
        ])
      ]);
      list.appendChild(li);
    });
    show($('mine-empty'), mine.length === 0);
  }

  function onAssigned(card) {
    if (!card) return;
    loadMine();
    if (card.assigned_to === me.id) {
      if ((!open || open.id !== card.id) && !accepting[card.id]) toast('一个会话转给了你：' + shortId(card.id), 'info');
    } else if (open && open.id === card.id) {
      toast('会话已转给其他同事。', 'info');
      if (me.role !== 'supervisor') closePanel();
      else refreshOpen();
    }
  }

  function onEnded(card, type) {
    loadMine();
    scheduleQueue();
    if (open && card && open.id === card.id) {
      open.conv = card;
      renderHead();
      if (type === 'conversation.released') toast('会话已交回机器人。', 'info');
    }
  }

  function onMessage(convId, m) {
    if (!m) return;
    if (open && open.id === convId) {
      appendMessage(m);
      // Hits come with the message; if the event carried none, fetch the assessed transcript.
      if (m.direction === 'in' && !m.assessment && !m.hits) scheduleRefresh();
    } else if (m.direction === 'in') {
      unread[convId] = true;
      renderMine();
    }
  }

  // The reply is stored but the child did not get it (e.g. WeChat's reply window): say so.
  function onUndelivered(convId, msgId) {
    undelivered[msgId] = true;
    if (open && open.id === convId) {
      markUndelivered(msgId);
      scheduleRefresh(); // the conversation's delivery block says why
    }
    toast('有一条回复没有送到孩子那里。', 'warn');
  }

  function markUndelivered(msgId) {
    var li = $('transcript').querySelector('li.msg[data-id="' + msgId + '"]');
    if (!li || li.querySelector('.undelivered')) return;
    li.classList.add('failed');
    li.appendChild(el('div', { className: 'undelivered', text: '未送达' }));
  }

  function renderDelivery(d) {
    var box = $('delivery');
    var info = d.delivery || {};
    var why = info.blocked || (info.undelivered && info.undelivered.reason);
    if (!why) { box.hidden = true; return; }
    var text = UNDELIVERED[why] || UNDELIVERED.send_failed;
    if (info.undelivered && info.undelivered.total) {
      text += '（累计 ' + info.undelivered.total + ' 条未送达）';
    }
    box.textContent = text;
    box.hidden = false;
  }

  // ---- one conversation ----
  async function openConversation(id) {
    var r = await api('GET', '/api/console/conversations/' + encodeURIComponent(id));
    if (!r.ok) {
      toast(r.status === 403 ? '你没有权限查看这个会话。' : '打不开会话：' + r.message, 'warn');
      return;
    }
    delete unread[id];
    open = { id: id, conv: r.data.conversation, seen: {} };
    $('lead-result').hidden = true;
    $('close-form').hidden = true;
    $('reply-text').value = '';
    show($('conv'), true);
    show($('conv-none'), false);
    renderDetail(r.data);
    renderMine();
    loadUsers();
    loadCanned(open.conv.lang || 'zh-CN');
    $('reply-text').focus();
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshOpen, 250);
  }

  async function refreshOpen() {
    if (!open) return;
    var id = open.id;
    var r = await api('GET', '/api/console/conversations/' + encodeURIComponent(id));
    if (!r.ok || !open || open.id !== id) return;
    open.conv = r.data.conversation;
    renderDetail(r.data);
  }

  function closePanel() {
    open = null;
    show($('conv'), false);
    show($('conv-none'), true);
    renderMine();
  }

  function holding() {
    return !!(open && me && open.conv && open.conv.mode === 'human' && open.conv.assigned_to === me.id);
  }

  function renderHead() {
    var c = open.conv;
    $('conv-title').textContent = '会话 ' + shortId(c.id);
    var meta = $('conv-meta');
    clear(meta);
    meta.appendChild(riskBadge(c.risk_level));
    meta.appendChild(el('span', { text: (CHANNEL[c.channel] || c.channel) + ' · ' +
      (MODE[c.mode] || c.mode) }));
    if (c.categories && c.categories.length) {
      meta.appendChild(el('span', { className: 'cats', text: categories(c.categories) }));
    }
    if (c.escalated) meta.appendChild(el('span', { className: 'flag', text: '已超时升级' }));
    var mineNow = holding();
    ['transfer', 'release', 'close-open', 'transfer-to', 'reply-send', 'reply-text'].forEach(
      function (id) { $(id).disabled = !mineNow; });
    if (!mineNow) $('close-form').hidden = true;
    document.body.setAttribute('data-holding', mineNow ? 'yes' : 'no');
  }

  function renderDetail(d) {
    renderHead();
    var list = $('transcript');
    clear(list);
    open.seen = {};
    (d.messages || []).forEach(appendMessage);
    list.scrollTop = list.scrollHeight;

    renderDelivery(d);
    $('summary').textContent = d.summary || '（还没有摘要）';
    var slots = $('slots');
    clear(slots);
    Object.keys(d.slots || {}).forEach(function (k) {
      var v = d.slots[k];
      if (HIDDEN_SLOTS[k] || v === null || v === '' || typeof v === 'object') return;
      slots.appendChild(el('dt', { text: SLOT[k] || k }));
      slots.appendChild(el('dd', { text: String(v) }));
    });
    if (!slots.firstChild) slots.appendChild(el('dd', { className: 'empty', text: '（没有）' }));
    var notes = $('notes');
    clear(notes);
    (d.notes || []).forEach(addNoteItem);
    (d.leads || []).forEach(function (l) { showLead(l); });
  }

  function addNoteItem(n) {
    $('notes').appendChild(el('li', {}, [
      el('span', { className: 'note-at', text: clock(n.at) + ' ' + userName(n.user_id) }),
      el('span', { text: n.text })
    ]));
  }

  function userName(id) {
    if (me && id === me.id) return '我';
    for (var i = 0; i < users.length; i++) if (users[i].id === id) return users[i].username;
    return id ? '#' + id : '';
  }

  function who(m) {
    if (m.direction === 'in') return { cls: 'child', label: '孩子' };
    var s = String(m.sender || '');
    if (s.indexOf('volunteer:') === 0) {
      var uid = parseInt(s.slice(10), 10);
      return { cls: 'volunteer', label: uid === (me && me.id) ? '我' : '志愿者 ' + userName(uid) };
    }
    if (s === 'system') return { cls: 'system', label: '系统' };
    return { cls: 'bot', label: '机器人' };
  }

  function hitsOf(m) {
    if (m.hits) return m.hits;
    var raw = (m.assessment && m.assessment.hits) || [];
    return raw.map(function (h, i) { return Object.assign({ index: i, verdict: null }, h); });
  }

  function appendMessage(m) {
    if (!open || open.seen[m.id]) return;
    open.seen[m.id] = true;
    var w = who(m);
    var hits = m.direction === 'in' ? hitsOf(m) : [];
    var body = el('div', { className: 'text' });
    body.appendChild(highlight(m.text || '', hits, m.id));
    var li = el('li', {
      className: 'msg ' + w.cls + (m.risk_level >= 2 ? ' risky' : ''),
      'data-id': m.id
    }, [
      el('div', { className: 'who', text: w.label + (m.created_at ? ' · ' + clock(m.created_at) : '') }),
      body
    ]);
    if (hits.length) li.appendChild(hitPanel(m.id, hits));
    var list = $('transcript');
    list.appendChild(li);
    if (undelivered[m.id]) markUndelivered(m.id);
    list.scrollTop = list.scrollHeight;
  }

  // Split the text at every hit boundary (code points, as the detector counts them) and wrap
  // each covered piece in <mark>; overlapping hits share the piece.
  function highlight(text, hits, msgId) {
    var chars = Array.from(text);
    var spans = [];
    hits.forEach(function (h) {
      var s = h.start, e = h.end;
      if (!(s >= 0 && e > s && e <= chars.length) ||
          (h.text && chars.slice(s, e).join('') !== h.text)) {
        var at = h.text ? text.indexOf(h.text) : -1; // a span that does not fit: find the words
        if (at < 0) return;
        s = Array.from(text.slice(0, at)).length;
        e = s + Array.from(h.text).length;
      }
      spans.push({ s: s, e: e, h: h });
    });
    var frag = document.createDocumentFragment();
    if (!spans.length) { frag.appendChild(document.createTextNode(text)); return frag; }
    var cuts = [0, chars.length];
    spans.forEach(function (x) { cuts.push(x.s, x.e); });
    cuts = cuts.filter(function (v, i, a) { return a.indexOf(v) === i; }).sort(function (a, b) { return a - b; });
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1];
      var piece = chars.slice(a, b).join('');
      var covering = spans.filter(function (x) { return x.s <= a && x.e >= b; });
      if (!covering.length) { frag.appendChild(document.createTextNode(piece)); continue; }
      var idx = covering.map(function (x) { return x.h.index; });
      frag.appendChild(el('mark', {
        className: 'hit', tabindex: '0', role: 'button', 'data-hits': idx.join(','),
        title: covering.map(function (x) {
          return x.h.rule + ' · ' + (CATEGORY[x.h.category] || x.h.category);
        }).join('\n'),
        onclick: function (ev) { toggleHits(msgId, ev.currentTarget.getAttribute('data-hits')); },
        onkeydown: function (ev) {
          if (ev.key === 'Enter' || ev.key === ' ') {
            ev.preventDefault();
            toggleHits(msgId, ev.currentTarget.getAttribute('data-hits'));
          }
        }
      }, [piece]));
    }
    return frag;
  }

  function hitPanel(msgId, hits) {
    var box = el('div', { className: 'hitbox' });
    var toggle = el('button', {
      type: 'button', className: 'hits-toggle', 'aria-expanded': 'false',
      text: '风险命中 ' + hits.length + ' 条',
      onclick: function () { toggleHits(msgId, null); }
    });
    var list = el('ul', { className: 'hits', hidden: true });
    hits.forEach(function (h) {
      var state = el('span', { className: 'verdict', text: h.verdict ? '已标：' + VERDICT[h.verdict] : '' });
      var row = el('li', { 'data-index': h.index }, [
        el('q', { text: h.text || '' }),
        el('span', { className: 'rule', text: h.rule || '' }),
        el('span', { className: 'cat', text: CATEGORY[h.category] || h.category || '' }),
        el('button', { type: 'button', className: 'mini ok', text: '属实',
          'aria-pressed': h.verdict === 'confirmed' ? 'true' : 'false',
          onclick: function (ev) { markHit(msgId, h.index, 'confirmed', state, ev.currentTarget); } }),
        el('button', { type: 'button', className: 'mini no', text: '误报',
          'aria-pressed': h.verdict === 'false_alarm' ? 'true' : 'false',
          onclick: function (ev) { markHit(msgId, h.index, 'false_alarm', state, ev.currentTarget); } }),
        state
      ]);
      list.appendChild(row);
    });
    box.appendChild(toggle);
    box.appendChild(list);
    return box;
  }

  function toggleHits(msgId, which) {
    var li = $('transcript').querySelector('li.msg[data-id="' + msgId + '"]');
    if (!li) return;
    var list = li.querySelector('ul.hits');
    var toggle = li.querySelector('.hits-toggle');
    var wanted = which ? which.split(',') : null;
    var rows = list.querySelectorAll('li');
    var alreadyFocused = wanted && !list.hidden && Array.prototype.every.call(rows, function (r) {
      return r.classList.contains('focus') === (wanted.indexOf(r.getAttribute('data-index')) >= 0);
    });
    list.hidden = which ? alreadyFocused : !list.hidden;
    toggle.setAttribute('aria-expanded', list.hidden ? 'false' : 'true');
    Array.prototype.forEach.call(rows, function (r) {
      r.classList.toggle('focus', !!wanted && wanted.indexOf(r.getAttribute('data-index')) >= 0);
    });
  }

  async function markHit(msgId, index, verdict, stateEl, button) {
    var r = await api('POST', '/api/console/conversations/' + encodeURIComponent(open.id) + '/hits',
      { message_id: msgId, index: index, verdict: verdict });
    if (!r.ok) { toast('标记失败：' + r.message, 'warn'); return; }
    stateEl.textContent = '已标：' + VERDICT[verdict];
    var row = button.parentNode;
    Array.prototype.forEach.call(row.querySelectorAll('button.mini'), function (b) {
      b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
    });
  }

  // ---- colleagues and canned replies ----
  async function loadUsers() {
    var r = await api('GET', '/api/console/users');
    if (!r.ok) return;
    users = r.data.users || [];
    var sel = $('transfer-to');
    clear(sel);
    sel.appendChild(el('option', { value: '', text: '转给…' }));
    users.forEach(function (u) {
      if (me && u.id === me.id) return;
      sel.appendChild(el('option', {
        value: String(u.id),
        text: u.username + (u.role === 'supervisor' ? '（督导）' : '') +
          (u.online ? (u.status === 'away' ? ' · 暂离' : ' · 在线') : ' · 离线')
      }));
    });
  }

  async function loadCanned(lang) {
    if (!canned[lang]) {
      var r = await api('GET', '/api/console/canned?lang=' + encodeURIComponent(lang));
      canned[lang] = r.ok ? (r.data.canned || []) : [];
    }
    var box = $('canned');
    clear(box);
    canned[lang].forEach(function (c) {
      box.appendChild(el('button', {
        type: 'button', className: 'chip', text: c.title, title: c.text,
        onclick: function () {
          if ($('reply-text').disabled) return;
          $('reply-text').value = c.text;
          $('reply-text').focus();
        }
      }));
    });
    show(box, canned[lang].length > 0);
  }

  // ---- actions on the open conversation ----
  function convPath(suffix) {
    return '/api/console/conversations/' + encodeURIComponent(open.id) + suffix;
  }

  var replying = false; // a reply is on its way: a second Enter must not send it twice

  async function sendReply(ev) {
    ev.preventDefault();
    if (replying || !holding()) return;
    var box = $('reply-text');
    var text = box.value.trim();
    if (!text) return;
    replying = true;
    $('reply-send').disabled = true;
    var id = open.id;
    var r;
    try {
      r = await api('POST', convPath('/messages'), { text: text });
    } finally {
      replying = false;
      $('reply-send').disabled = !holding();
    }
    if (!r.ok) { toast('没有发出去：' + r.message, 'warn'); return; }
    if (open && open.id === id) {
      box.value = '';
      var m = r.data.message;
      appendMessage({ id: m.id, direction: 'out', sender: m.sender, text: m.text,
        created_at: new Date().toISOString() });
    }
  }

  async function saveNote(ev) {
    ev.preventDefault();
    var box = $('note-text');
    var text = box.value.trim();
    if (!text || !open) return;
    var r = await api('POST', convPath('/notes'), { text: text });
    if (!r.ok) { toast('备注没有保存：' + r.message, 'warn'); return; }
    box.value = '';
    addNoteItem({ user_id: me.id, text: r.data.note.text, at: new Date().toISOString() });
  }

  async function transfer() {
    var to = $('transfer-to').value;
    if (!to) { toast('请先选择要转给谁。', 'warn'); return; }
    var r = await api('POST', convPath('/transfer'), { to: parseInt(to, 10) });
    if (!r.ok) { toast('转接失败：' + r.message, 'warn'); return; }
    toast('已转给 ' + r.data.to.username + '。', 'info');
    closePanel();
    loadMine();
  }

  async function release() {
    if (!window.confirm('把这个会话交回机器人吗？孩子会继续和机器人聊。')) return;
    var r = await api('POST', convPath('/release'));
    if (!r.ok) { toast('操作失败：' + r.message, 'warn'); return; }
    toast('已交回机器人。', 'info');
    closePanel();
    loadMine();
  }

  async function closeConversation(ev) {
    ev.preventDefault();
    var summary = $('close-summary').value.trim();
    if (!summary) { toast('请写一句摘要。', 'warn'); $('close-summary').focus(); return; }
    $('close-confirm').disabled = true;
    var r = await api('POST', convPath('/close'), {
      category: $('close-category').value, summary: summary
    });
    $('close-confirm').disabled = false;
    if (!r.ok) { toast('结束失败：' + r.message, 'warn'); return; }
    $('close-form').hidden = true;
    $('close-summary').value = '';
    showLead(r.data.lead);
    open.conv = Object.assign({}, open.conv, { mode: 'closed', assigned_to: null });
    renderHead();
    loadMine();
    if (!$('leads-view').hidden) loadLeads();
  }

  function showLead(lead) {
    var p = $('lead-result');
    clear(p);
    p.appendChild(document.createTextNode('会话已结束，线索编号 '));
    p.appendChild(el('strong', { className: 'lead-code', text: lead.code }));
    p.appendChild(document.createTextNode('（' + (LEAD_CATEGORY[lead.category] || lead.category || '') +
      ' · ' + (LEAD_STATE[lead.state] || lead.state) + '）'));
    p.hidden = false;
  }

  // ---- leads ----
  async function loadLeads() {
    var r = await api('GET', '/api/console/leads');
    if (!r.ok) { toast('线索加载失败：' + r.message, 'warn'); return; }
    var states = r.data.states || [];
    var body = $('leads');
    clear(body);
    (r.data.leads || []).forEach(function (l) {
      var i = states.indexOf(l.state);
      var next = i >= 0 && i + 1 < states.length ? states[i + 1] : null;
      var note = el('input', { type: 'text', className: 'lead-note', placeholder: '说明（可选）',
        maxlength: '1000', 'aria-label': '说明' });
      var cell = next ? el('td', { className: 'next' }, [
        note,
        el('button', { type: 'button', className: 'plain', text: '→ ' + (LEAD_STATE[next] || next),
          onclick: function (ev) { advance(l.id, next, note.value, ev.currentTarget); } })
      ]) : el('td', { text: '—' });
      body.appendChild(el('tr', { 'data-code': l.code }, [
        el('td', {}, [el('strong', { className: 'lead-code', text: l.code })]),
        el('td', { text: LEAD_CATEGORY[l.category] || l.category || '—' }),
        el('td', {}, [riskBadge(['none', 'routine', 'urgent', 'imminent'][l.risk_level] || 'none')]),
        el('td', { className: 'state', text: LEAD_STATE[l.state] || l.state }),
        el('td', { className: 'lead-summary', text: l.summary || '' }),
        el('td', { text: clock(l.updated_at) }),
        cell
      ]));
    });
    show($('leads-empty'), !(r.data.leads || []).length);
  }

  async function advance(id, state, note, button) {
    button.disabled = true;
    var r = await api('POST', '/api/console/leads/' + id + '/state', { state: state, note: note || null });
    if (!r.ok) {
      button.disabled = false;
      toast(r.status === 409 ? '状态不能这样改：' + r.message : '更新失败：' + r.message, 'warn');
      return;
    }
    toast('线索已改为「' + (LEAD_STATE[r.data.lead.state] || r.data.lead.state) + '」。', 'info');
    loadLeads();
  }

  function showTab(name) {
    ['chats', 'leads'].forEach(function (t) {
      $('tab-' + t).setAttribute('aria-selected', t === name ? 'true' : 'false');
      show($(t + '-view'), t === name);
    });
    if (name === 'leads') loadLeads();
  }

  // ---- wiring ----
  function bindUi() {
    // Sound and notifications may only be asked for in a user gesture: the login is one.
    $('login-form').addEventListener('submit', function () { unlockAudio(); askNotifications(); });
    QT.bindLogin(api, start, function (r) {
      return '登录失败次数太多，账号暂时锁定。' + (r.message || '');
    });
    $('logout').addEventListener('click', logout);
    $('presence').addEventListener('click', function () {
      setPresence(presence === 'available' ? 'away' : 'available', true);
    });
    $('tab-chats').addEventListener('click', function () { showTab('chats'); });
    $('tab-leads').addEventListener('click', function () { showTab('leads'); });
    $('reply-form').addEventListener('submit', sendReply);
    $('reply-text').addEventListener('keydown', function (ev) {
      if (QT.isSendEnter(ev)) {
        ev.preventDefault();
        sendReply(ev);
      }
    });
    $('note-form').addEventListener('submit', saveNote);
    $('transfer').addEventListener('click', transfer);
    $('release').addEventListener('click', release);
    $('close-open').addEventListener('click', function () {
      $('close-form').hidden = false;
      $('close-summary').focus();
    });
    $('close-cancel').addEventListener('click', function () { $('close-form').hidden = true; });
    $('close-form').addEventListener('submit', closeConversation);
    // Browsers only let a page make sound after a user gesture: unlock on the first click.
    document.addEventListener('pointerdown', unlockAudio, { once: true });
    setInterval(function () {
      Array.prototype.forEach.call(document.querySelectorAll('.wait[data-since]'), function (n) {
        var since = n.getAttribute('data-since');
        if (since) n.textContent = '已等待 ' + waited(since);
      });
    }, 1000);
  }

  QT.ready(init);
})();
