/* Qingting staff pages (console, admin): what both pages do the same way, as window.QT.
   Plain ES2017, no dependencies, no external requests; load it before the page's own script.
   Text from the server is always set with textContent, never parsed as HTML. */
(function () {
  'use strict';

  var LOGIN = '/api/console/login';
  var $ = function (id) { return document.getElementById(id); };

  // ---- DOM ----
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'text') e.textContent = v;
        else if (k === 'className') e.className = v;
        else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : v);
      });
    }
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function show(node, on) { node.hidden = !on; }

  // ---- time ----
  // Server times are UTC; an ISO string without an offset must not be read as local time.
  function parseTime(s) {
    if (!s) return NaN;
    return Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(s) ? s : s + 'Z');
  }
  // Local "2026-01-05 09:07" (withYear) or "1-05 09:07"; '' for no or unreadable time.
  function clock(s, withYear) {
    var t = parseTime(s);
    if (!(t > 0)) return '';
    var d = new Date(t);
    var p = function (n) { return (n < 10 ? '0' : '') + n; };
    var day = p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes());
    return withYear ? d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + day
      : (d.getMonth() + 1) + '-' + day;
  }

  // ---- the #toast line: a toast function that hides it again after ms ----
  function toaster(ms) {
    var timer = null;
    return function toast(text, kind) {
      var t = $('toast');
      t.textContent = text;
      t.className = 'toast' + (kind ? ' toast-' + kind : '');
      t.hidden = false;
      clearTimeout(timer);
      timer = setTimeout(function () { t.hidden = true; }, ms);
    };
  }

  // ---- the API (JSON, same origin, X-CSRF-Token on every state-changing call) ----
  // hooks.token(): the CSRF token now ('' when logged out); hooks.expired(): a call other than
  // the login itself got 401; hooks.forbidden(err): a call got 403 (err: the server's error).
  // What a page does then (and whether it was logged in) is the page's business.
  function makeApi(hooks) {
    return async function api(method, path, body) {
      var opts = { method: method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
      if (body !== undefined) {
        opts.headers['Content-Type'] = 'application/json';
        opts.body = JSON.stringify(body);
      }
      var csrf = hooks.token();
      if (method !== 'GET' && csrf) opts.headers['X-CSRF-Token'] = csrf;
      var res;
      try {
        res = await fetch(path, opts);
      } catch (e) {
        return { status: 0, ok: false, data: {}, code: 'network', message: '网络连接失败，请稍后再试。',
          error: {} };
      }
      var data = {};
      try { data = await res.json(); } catch (e) { /* empty or not JSON */ }
      var err = (data && data.error) || {};
      if (res.status === 401 && path !== LOGIN) {
        if (hooks.expired) hooks.expired();
      } else if (res.status === 403) {
        if (hooks.forbidden) hooks.forbidden(err);
      }
      return { status: res.status, ok: res.ok, data: data, code: err.code || '',
        message: err.message || ('出错了（' + res.status + '）'), error: err };
    };
  }

  // ---- which part of the page shows: #login, #denied (admin only) or #app ----
  function view(name) {
    document.body.setAttribute('data-view', name);
    ['login', 'denied', 'app'].forEach(function (id) {
      if ($(id)) show($(id), id === name);
    });
  }

  // The login form, with why the last session ended (message) when there is a reason to say.
  function showLogin(message) {
    view('login');
    $('username').focus();
    if (message) {
      $('login-error').textContent = message;
      $('login-error').hidden = false;
    }
  }

  // Wire #login-form: on success start(user, csrfToken); else say why, lockedText(r) on 423.
  function bindLogin(api, start, lockedText) {
    $('login-form').addEventListener('submit', async function (ev) {
      ev.preventDefault();
      var err = $('login-error');
      err.hidden = true;
      $('login-btn').disabled = true;
      var r = await api('POST', LOGIN, {
        username: $('username').value.trim(), password: $('password').value
      });
      $('login-btn').disabled = false;
      if (r.ok) {
        $('password').value = '';
        start(r.data.user, r.data.csrf_token);
        return;
      }
      err.textContent = r.status === 401 ? '用户名或密码不对。'
        : r.status === 423 ? lockedText(r)
        : r.message;
      err.hidden = false;
    });
  }

  // On load: carry on with the session the cookie still holds, or show the login form.
  async function resume(api, start) {
    var r = await api('GET', '/api/console/me');
    if (r.ok) start(r.data.user, r.data.csrf_token);
    else showLogin('');
  }

  // Does this keydown mean "send"? Enter without Shift, and not the Enter that confirms a pinyin
  // IME candidate (Safari reports that one with keyCode 229 and isComposing false).
  function isSendEnter(ev) {
    return ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229;
  }

  function ready(fn) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', fn);
    else fn();
  }

  window.QT = {
    $: $, el: el, clear: clear, show: show, parseTime: parseTime, clock: clock,
    toaster: toaster, makeApi: makeApi, view: view, showLogin: showLogin,
    bindLogin: bindLogin, resume: resume, ready: ready, isSendEnter: isSendEnter
  };
})();
