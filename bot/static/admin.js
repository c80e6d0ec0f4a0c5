/* Qingting admin page: canned replies, dialogue scripts (edit, check, publish), detector report.
   Plain ES2017, no dependencies, no external requests; uses only /api/console/*.
   Text from the server is always set with textContent, never parsed as HTML. */
(function () {
  'use strict';

  var LANG = { 'zh-CN': '简体中文', 'zh-TW': '繁體中文', en: 'English' };
  var CATEGORY = {
    suicide_self_harm: '自杀/自伤', sexual_abuse: '性侵害', physical_abuse: '身体伤害',
    neglect_abandonment: '忽视/遗弃', bullying: '欺凌', online_harm: '网络伤害',
    other_rights: '其他权益'
  };
  var ROLE = { volunteer: '志愿者', supervisor: '督导', admin: '管理员' };
  // What each validator problem code means, for an admin who does not read the English message.
  var PROBLEM = {
    yaml_syntax: 'YAML 格式错误', unreadable: '读不出内容', too_large: '脚本太大',
    wrong_type: '类型不对', missing_key: '缺少必填项', unknown_key: '不认识的字段',
    duplicate_key: '字段重复', schema: '结构不对', reserved: '用了保留的值',
    bad_name: '名字不合规', bad_template: '文字模板有误',
    unknown_target: '跳转到不存在的状态', unknown_slot: '不存在的信息项',
    unknown_option: '不存在的选项', unknown_action: '不认识的动作',
    duplicate_option: '选项重复', duplicate_action: '动作重复', conflict: '设置互相矛盾',
    silent: '这一步什么也没说', unreachable: '没有路能走到这一步',
    no_way_out: '走进去就出不来', no_fallback: '缺少兜底的话', next_cycle: '自动跳转绕成了圈',
    option_leads_nowhere: '选项没有去处', skippable: '“可跳过”设置有误',
    no_human: '孩子没法找到真人', no_human_path: '有的路上孩子没法找到真人'
  };
  var LOW_PRECISION = 0.5;

  var $ = QT.$;
  var el = QT.el;
  var clear = QT.clear;
  var show = QT.show;
  var toast = QT.toaster(5000);
  var csrf = '';
  var me = null;
  var loggedIn = false;
  var tab = 'canned';
  var cannedLang = 'zh-CN';
  var cannedItems = [];
  var editingCanned = null;      // the canned reply being edited, or null when adding
  var armedDelete = null;        // id whose delete button was pressed once (asks to confirm)
  var scripts = { current: [], uploads: [] };
  var doc = null;                // {script_id, lang, version, yaml}: what the editor opened
  var armedDiscard = null;       // "id/lang" the admin asked to open over unpublished edits
  var publishing = false;

  function when(s) { return QT.clock(s, true); }

  var api = QT.makeApi({
    token: function () { return csrf; },
    expired: function () { if (loggedIn) sessionEnded('登录已过期，请重新登录。'); },
    // the role changed under us: show the refusal, nothing else
    forbidden: function (err) { if (loggedIn && err.code === 'forbidden') denied(me); }
  });

  // ---- login, refusal, logout ----
  async function init() {
    bindUi();
    await QT.resume(api, start);
  }

  function start(user, token) {
    me = user;
    csrf = token;
    loggedIn = true;
    if (!user || user.role !== 'admin') {
      denied(user);
      return;
    }
    $('me').textContent = user.username + '（管理员）';
    QT.view('app');
    showTab(tab);
  }

  // Logged in, but not an admin: say so and show nothing of the admin page.
  function denied(user) {
    $('denied-who').textContent = user
      ? '你现在登录的是 ' + user.username + '（' + (ROLE[user.role] || user.role) + '）。' : '';
    QT.view('denied');
  }

  async function logout() {
    await api('POST', '/api/console/logout');
    sessionEnded('');
  }

  function sessionEnded(message) {
    loggedIn = false;
    csrf = '';
    me = null;
    doc = null;
    resetEditor();
    QT.showLogin(message);
  }

  // ---- tabs ----
  function showTab(name) {
    tab = name;
    ['canned', 'scripts', 'report'].forEach(function (t) {
      $('tab-' + t).setAttribute('aria-selected', t === name ? 'true' : 'false');
      show($(t + '-view'), t === name);
    });
    if (name === 'canned') loadCanned();
    else if (name === 'scripts') loadScripts();
    else loadReport();
  }

  // ---- 1. canned replies ----
  async function loadCanned() {
    var lang = cannedLang;
    var r = await api('GET', '/api/console/canned?lang=' + encodeURIComponent(lang));
    if (!r.ok) { if (loggedIn) toast('快捷回复读取失败：' + r.message, 'warn'); return; }
    if (lang !== cannedLang) return;  // the admin switched language while this was loading
    cannedItems = r.data.canned || [];
    renderCanned();
  }

  function renderCanned() {
    Array.prototype.forEach.call(document.querySelectorAll('#canned-langs .seg-btn'), function (b) {
      b.setAttribute('aria-pressed', b.getAttribute('data-lang') === cannedLang ? 'true' : 'false');
    });
    var list = $('canned-list');
    clear(list);
    cannedItems.forEach(function (c) {
      var confirming = armedDelete === c.id;
      list.appendChild(el('li', {
        className: 'canned-item' + (editingCanned && editingCanned.id === c.id ? ' editing' : ''),
        'data-id': String(c.id)
      }, [
        el('span', { className: 'c-title', text: c.title }),
        el('span', { className: 'c-text', text: c.text }),
        el('span', { className: 'c-actions' }, [
          el('button', { type: 'button', className: 'plain', text: '编辑',
            'aria-label': '编辑：' + c.title, onclick: function () { editCanned(c); } }),
          el('button', { type: 'button', className: confirming ? 'danger' : 'plain',
            text: confirming ? '确定删除？' : '删除', 'aria-label': (confirming ? '确定删除：' : '删除：') + c.title,
            onclick: function () { deleteCanned(c); } })
        ])
      ]));
    });
    show($('canned-empty'), cannedItems.length === 0);
  }

  function editCanned(c) {
    editingCanned = c;
    armedDelete = null;
    $('canned-form-title').textContent = '编辑快捷回复';
    $('canned-lang').value = c.lang;
    $('canned-title').value = c.title;
    $('canned-text').value = c.text;
    $('canned-save').textContent = '保存修改';
    show($('canned-cancel'), true);
    $('canned-error').hidden = true;
    countCanned();
    renderCanned();
    $('canned-title').focus();
  }

  function resetCannedForm() {
    editingCanned = null;
    $('canned-form-title').textContent = '添加快捷回复';
    $('canned-lang').value = cannedLang;
    $('canned-title').value = '';
    $('canned-text').value = '';
    $('canned-save').textContent = '添加';
    show($('canned-cancel'), false);
    $('canned-error').hidden = true;
    countCanned();
    renderCanned();
  }

  function countCanned() {
    $('canned-count').textContent = $('canned-text').value.length + ' / 2000';
  }

  async function saveCanned(ev) {
    ev.preventDefault();
    var err = $('canned-error');
    err.hidden = true;
    var body = {
      lang: $('canned-lang').value,
      title: $('canned-title').value.trim(),
      text: $('canned-text').value.trim()
    };
    if (!body.title || !body.text) {
      err.textContent = '标题和内容都要填写。';
      err.hidden = false;
      return;
    }
    if (editingCanned) body.id = editingCanned.id;
    $('canned-save').disabled = true;
    var r = await api('POST', '/api/console/canned', body);
    $('canned-save').disabled = false;
    if (!r.ok) {
      err.textContent = r.code === 'unknown_canned' ? '这条回复已经被删除了。'
        : r.code === 'title_too_long' ? '标题最多 100 个字。'
        : r.code === 'text_too_long' ? '内容最多 2000 个字。'
        : '没有保存：' + r.message;
      err.hidden = false;
      return;
    }
    toast(editingCanned ? '已保存修改。' : '已添加。');
    cannedLang = r.data.canned.lang;  // show the list the reply now belongs to
    resetCannedForm();
    loadCanned();
  }

  async function deleteCanned(c) {
    if (armedDelete !== c.id) {  // first press asks; the second deletes
      armedDelete = c.id;
      renderCanned();
      return;
    }
    armedDelete = null;
    var r = await api('DELETE', '/api/console/canned/' + encodeURIComponent(c.id));
    if (!r.ok && r.code !== 'unknown_canned') {
      toast('没有删除：' + r.message, 'warn');
      renderCanned();
      return;
    }
    if (editingCanned && editingCanned.id === c.id) resetCannedForm();
    toast('已删除“' + c.title + '”。');
    loadCanned();
  }

  // ---- 2. dialogue scripts ----
  async function loadScripts() {
    var r = await api('GET', '/api/console/scripts');
    if (!r.ok) { if (loggedIn) toast('脚本列表读取失败：' + r.message, 'warn'); return; }
    scripts = { current: r.data.current || [], uploads: r.data.uploads || [] };
    renderScripts();
  }

  function key(sid, lang) { return sid + '/' + lang; }

  function renderScripts() {
    var current = {};
    var body = $('scripts-current');
    clear(body);
    scripts.current.forEach(function (s) {
      current[key(s.script_id, s.lang) + '@' + s.version] = true;
      var isOpen = doc && doc.script_id === s.script_id && doc.lang === s.lang;
      var armed = armedDiscard === key(s.script_id, s.lang);
      body.appendChild(el('tr', {
        className: isOpen ? 'is-open' : '', 'data-script': key(s.script_id, s.lang)
      }, [
        el('td', { text: s.script_id }),
        el('td', { text: s.lang, title: LANG[s.lang] || s.lang }),
        el('td', { className: 'ver', text: s.version }),
        el('td', null, [el('button', {
          type: 'button', className: armed ? 'danger' : 'plain',
          text: armed ? '放弃修改并打开' : (isOpen ? '重新打开' : '打开'),
          'aria-label': (armed ? '放弃修改并打开 ' : '打开 ') + s.script_id + ' ' + s.lang,
          onclick: function () { openScript(s.script_id, s.lang); }
        })])
      ]));
    });
    var ups = $('scripts-uploads');
    clear(ups);
    scripts.uploads.slice().reverse().forEach(function (u) {  // newest first
      var live = current[key(u.script_id, u.lang) + '@' + u.version];
      ups.appendChild(el('tr', { className: live ? 'is-current' : '' }, [
        el('td', { text: u.script_id + ' ' + u.lang }),
        el('td', null, [el('span', { className: 'ver', text: u.version }),
          live ? el('span', { className: 'tag', text: '当前' }) : null]),
        el('td', { text: u.uploaded_by }),
        el('td', { text: when(u.at), title: u.at })
      ]));
    });
    show($('uploads-empty'), scripts.uploads.length === 0);
  }

  function dirty() { return !!doc && $('script-text').value !== doc.yaml; }

  async function openScript(sid, lang) {
    var k = key(sid, lang);
    if (dirty() && armedDiscard !== k) {  // do not throw away edits on one click
      armedDiscard = k;
      renderScripts();
      toast('当前脚本有还没发布的修改。再点一次会放弃这些修改。', 'warn');
      return;
    }
    armedDiscard = null;
    var r = await api('GET', '/api/console/scripts/' + encodeURIComponent(sid) + '/' +
      encodeURIComponent(lang));
    if (!r.ok) { toast('打开失败：' + r.message, 'warn'); return; }
    doc = r.data;
    $('script-text').value = doc.yaml;
    $('editor-title').textContent = '编辑 ' + doc.script_id + ' · ' + (LANG[doc.lang] || doc.lang) +
      '（版本 ' + doc.version + '）';
    show($('editor-wrap'), true);
    show($('publish-ok'), false);
    clearProblems();
    editorChanged();
    renderScripts();
    var ta = $('script-text');
    ta.focus();
    ta.setSelectionRange(0, 0);
    ta.scrollTop = 0;
  }

  function resetEditor() {
    $('script-text').value = '';
    show($('editor-wrap'), false);
    $('editor-title').textContent = '选择左边的一个脚本来编辑';
    $('editor-state').textContent = '';
    clearProblems();
  }

  function lineCount(text) { return text.split('\n').length; }

  function editorChanged() {
    var ta = $('script-text');
    var n = lineCount(ta.value);
    var g = $('gutter');
    if (g.getAttribute('data-lines') !== String(n)) {
      var nums = [];
      for (var i = 1; i <= n; i++) nums.push(i);
      g.textContent = nums.join('\n') + '\n';  // the extra line lets the gutter scroll as far
      g.setAttribute('data-lines', String(n));
    }
    syncGutter();
    var isDirty = dirty();
    var st = $('editor-state');
    st.textContent = isDirty ? '有未发布的修改' : (doc ? '与当前版本相同' : '');
    st.className = 'editor-state' + (isDirty ? ' dirty' : '');
    $('script-revert').disabled = !isDirty;
    var bytes = new Blob([ta.value]).size;
    $('script-size').textContent = (bytes / 1024).toFixed(1) + ' / 60 KiB';
    if (!isDirty) armedDiscard = null;
    cursorMoved();
  }

  function syncGutter() { $('gutter').scrollTop = $('script-text').scrollTop; }

  function cursorMoved() {
    var ta = $('script-text');
    var line = lineCount(ta.value.slice(0, ta.selectionStart));
    $('cursor-pos').textContent = '第 ' + line + ' 行';
  }

  // Put the caret at the start of a 1-based line, select that line and scroll it into view.
  function goToLine(line) {
    var ta = $('script-text');
    var text = ta.value;
    var start = 0;
    for (var i = 1; i < line; i++) {
      var nl = text.indexOf('\n', start);
      if (nl < 0) break;
      start = nl + 1;
    }
    var end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    ta.focus();
    ta.setSelectionRange(start, end);
    var lineHeight = parseFloat(getComputedStyle(ta).lineHeight) || 20;
    ta.scrollTop = Math.max(0, (line - 1) * lineHeight - ta.clientHeight / 3);
    syncGutter();
    cursorMoved();
  }

  function clearProblems() {
    clear($('problems'));
    show($('problems-box'), false);
  }

  function showProblems(problems) {
    var list = $('problems');
    clear(list);
    problems.forEach(function (p) {
      var has = typeof p.line === 'number' && p.line > 0;
      list.appendChild(el('li', null, [el('button', {
        type: 'button', className: 'problem', disabled: !has, 'data-line': has ? String(p.line) : null,
        onclick: has ? function () { goToLine(p.line); } : null
      }, [
        el('span', { className: 'p-line', text: has ? '第 ' + p.line + ' 行' : '整个脚本' }),
        p.state ? el('span', { className: 'p-state', text: '状态 ' + p.state }) : null,
        el('span', { className: 'p-what', text: PROBLEM[p.code] || p.code }),
        el('span', { className: 'p-msg', text: p.message + ' [' + p.code + ']' })
      ])]));
    });
    $('problems-title').textContent = '脚本有 ' + problems.length + ' 个问题，没有发布';
    show($('problems-box'), true);
    $('problems-box').scrollTop = 0;
  }

  async function publish() {
    if (!doc || publishing) return;
    var text = $('script-text').value;
    show($('publish-ok'), false);
    clearProblems();
    if (!text.trim()) {
      showProblems([{ line: null, state: null, code: 'empty', message: '脚本是空的。' }]);
      return;
    }
    publishing = true;
    $('script-publish').disabled = true;
    $('script-publish').textContent = '检查中…';
    var r = await api('POST', '/api/console/scripts', { yaml: text });
    publishing = false;
    $('script-publish').disabled = false;
    $('script-publish').textContent = '检查并发布';
    if (r.status === 201) {
      var d = r.data;
      var same = d.script_id === doc.script_id && d.lang === doc.lang;
      var was = doc.version;
      doc = { script_id: d.script_id, lang: d.lang, version: d.version, yaml: text };
      $('editor-title').textContent = '编辑 ' + d.script_id + ' · ' + (LANG[d.lang] || d.lang) +
        '（版本 ' + d.version + '）';
      $('publish-ok').textContent = (same && was === d.version)
        ? '内容没有变化，仍是版本 ' + d.version + '，已设为当前版本。'
        : '已发布：' + d.script_id + ' ' + d.lang + ' 的新版本是 ' + d.version +
          '。新开始的对话从现在起使用它。';
      show($('publish-ok'), true);
      editorChanged();
      loadScripts();
      return;
    }
    if (r.status === 422 && r.code === 'invalid_script') {
      showProblems(r.error.problems || []);
      return;
    }
    if (r.status === 413) {
      showProblems([{ line: null, state: null, code: 'too_large', message: '脚本最多 60 KiB。' }]);
      return;
    }
    if (r.status === 401 || r.status === 403) return;  // handled by api(): login / refusal
    showProblems([{ line: null, state: null, code: r.code || 'error', message: r.message }]);
  }

  function revert() {
    if (!doc) return;
    $('script-text').value = doc.yaml;
    clearProblems();
    editorChanged();
  }

  // ---- 3. detector report ----
  async function loadReport() {
    var r = await api('GET', '/api/console/reports/hits');
    if (!r.ok) { if (loggedIn) toast('报告读取失败：' + r.message, 'warn'); return; }
    var rows = (r.data.rules || []).slice();
    // Most false alarms first: those are the rules that waste volunteers' time.
    rows.sort(function (a, b) {
      return (b.false_alarm - a.false_alarm) || (precisionOf(a) - precisionOf(b)) ||
        String(a.rule).localeCompare(String(b.rule));
    });
    var body = $('report');
    clear(body);
    rows.forEach(function (x) {
      var p = x.precision;
      var low = typeof p === 'number' && p < LOW_PRECISION;
      body.appendChild(el('tr', { className: low ? 'low' : '', 'data-rule': x.rule }, [
        el('td', { className: 'rule', text: x.rule }),
        el('td', { text: CATEGORY[x.category] || x.category }),
        el('td', { className: 'num', text: String(x.confirmed) }),
        el('td', { className: 'num', text: String(x.false_alarm) }),
        el('td', { className: 'num prec' }, [
          typeof p === 'number' ? Math.round(p * 100) + '%' : '—',
          low ? el('span', { className: 'low-flag', text: '偏低' }) : null
        ])
      ]));
    });
    show($('report-empty'), rows.length === 0);
  }

  function precisionOf(x) { return typeof x.precision === 'number' ? x.precision : 2; }

  // ---- wiring ----
  function bindUi() {
    QT.bindLogin(api, start, function () { return '登录失败次数太多，账号暂时锁定，请稍后再试。'; });
    $('logout').addEventListener('click', logout);
    $('denied-switch').addEventListener('click', logout);
    ['canned', 'scripts', 'report'].forEach(function (t) {
      $('tab-' + t).addEventListener('click', function () { showTab(t); });
    });
    Array.prototype.forEach.call(document.querySelectorAll('#canned-langs .seg-btn'), function (b) {
      b.addEventListener('click', function () {
        cannedLang = b.getAttribute('data-lang');
        armedDelete = null;
        if (!editingCanned) $('canned-lang').value = cannedLang;
        cannedItems = [];
        renderCanned();
        loadCanned();
      });
    });
    $('canned-form').addEventListener('submit', saveCanned);
    $('canned-cancel').addEventListener('click', resetCannedForm);
    $('canned-text').addEventListener('input', countCanned);
    var ta = $('script-text');
    ta.addEventListener('input', editorChanged);
    ta.addEventListener('scroll', syncGutter);
    ['keyup', 'click', 'select'].forEach(function (e) { ta.addEventListener(e, cursorMoved); });
    $('script-publish').addEventListener('click', publish);
    $('script-revert').addEventListener('click', revert);
    $('report-reload').addEventListener('click', loadReport);
    window.addEventListener('beforeunload', function (ev) {
      if (loggedIn && dirty()) { ev.preventDefault(); ev.returnValue = ''; }
    });
  }

  QT.ready(init);
})();
