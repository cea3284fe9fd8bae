// The phone's send queue, on every page (progressive enhancement: without JavaScript the
// normal pages work online). Entries made offline wait in IndexedDB with their UUIDs and
// leave the phone only once the server has confirmed them. Each entry belongs to the worker
// who made it: another worker on the same phone never sees it.
(function () {
  "use strict";
  var body = document.body;
  var owner = body ? body.getAttribute("data-user") : null;
  var DB_NAME = "bladi-field", DB_VERSION = 1;
  var IDLE_LIMIT = 12 * 3600 * 1000;  // cached identifying data is wiped after 12 h unused
  var BATCH = 50;
  var sending = false, retryTimer = null;
  // The session ended on the server (logout elsewhere, idle timeout, lifetime): the API
  // answers 401, or a page redirects to the login form. The queue waits for a new login.
  var LOGIN = new Error("login needed");
  function endedSession(response) {
    return response.status === 401 || (response.redirected && /\/login/.test(response.url));
  }

  function open() {
    return new Promise(function (resolve, reject) {
      if (!window.indexedDB) { reject(new Error("no IndexedDB")); return; }
      var request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = function () {
        var db = request.result;
        var queue = db.createObjectStore("queue", { keyPath: "uuid" });
        queue.createIndex("owner", "owner");
        db.createObjectStore("cache", { keyPath: "key" });
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  function run(store, mode, work) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(store, mode);
        var result = work(tx.objectStore(store));
        tx.oncomplete = function () {
          db.close();
          resolve(result && "result" in result ? result.result : result);
        };
        tx.onerror = function () { db.close(); reject(tx.error); };
      });
    });
  }

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40; bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  var Queue = {
    owner: owner,
    uuid: uuid4,
    // Every entry of this worker, oldest first.
    list: function () {
      if (!owner) return Promise.resolve([]);
      return run("queue", "readonly", function (store) {
        return store.index("owner").getAll(owner);
      }).then(function (items) {
        return (items || []).sort(function (a, b) { return a.created - b.created; });
      });
    },
    add: function (type, data, id) {
      var item = { uuid: id || uuid4(), owner: owner, type: type, data: data,
                   state: "waiting", reason: null, field_errors: null,
                   created: Date.now(), tries: 0, next_try: 0 };
      return run("queue", "readwrite", function (store) { store.put(item); })
        .then(function () { Queue.changed(); Queue.send(); return item; });
    },
    put: function (item) {
      return run("queue", "readwrite", function (store) { store.put(item); })
        .then(function () { Queue.changed(); });
    },
    remove: function (id) {
      return run("queue", "readwrite", function (store) { store["delete"](id); })
        .then(function () { Queue.changed(); });
    },
    // Cached data of this worker (rosters, surveys, cases), by kind.
    cacheGet: function (kind) {
      if (!owner) return Promise.resolve(null);
      return run("cache", "readonly", function (store) { return store.get(owner + ":" + kind); })
        .then(function (row) { return row ? row.value : null; });
    },
    cacheSet: function (kind, value) {
      return run("cache", "readwrite", function (store) {
        store.put({ key: owner + ":" + kind, owner: owner, value: value, saved: Date.now() });
      });
    },
    // Forget every cached data (not the queue: unsent entries never vanish).
    wipeCache: function () {
      var done = run("cache", "readwrite", function (store) { store.clear(); });
      if (navigator.serviceWorker && navigator.serviceWorker.controller) {
        navigator.serviceWorker.controller.postMessage("forget-pages");
      }
      return done;
    },
    changed: function () {
      Queue.list().then(function (items) {
        var waiting = items.filter(function (i) { return i.state !== "sent"; }).length;
        document.querySelectorAll(".queue-badge").forEach(function (badge) {
          badge.hidden = waiting === 0;
          badge.textContent = waiting === 1 ? badge.getAttribute("data-one")
            : badge.getAttribute("data-many").replace("{n}", waiting);
        });
        document.dispatchEvent(new CustomEvent("bladi:queue", { detail: items }));
      }).catch(function () {});
    },
    // Send what waits, oldest first, in batches; the server answers per entry. Nothing is
    // removed before the server confirmed it; a failed send is retried with a growing delay.
    send: function () {
      if (sending || !owner || navigator.onLine === false) return Promise.resolve();
      sending = true;
      var now = Date.now();
      return Queue.list().then(function (items) {
        var due = items.filter(function (i) {
          return (i.state === "waiting" && (i.next_try || 0) <= now) ||
                 (i.state === "sending" && now - (i.sending_since || 0) > 60000);
        }).slice(0, BATCH);
        if (!due.length) return null;
        return fetch("/api/v1/me", { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (response) {
            if (endedSession(response)) throw LOGIN;
            if (!response.ok) throw new Error("auth " + response.status);
            return response.json();
          }).then(function (me) {
            // Entries leave only under the session of the worker who made them.
            if (!me.user || me.user.id !== owner) throw LOGIN;
            Queue.needsLogin(false);
            due.forEach(function (i) { i.state = "sending"; i.sending_since = Date.now(); });
            return Promise.all(due.map(Queue.put)).then(function () {
              return fetch("/api/v1/sync", {
                method: "POST", credentials: "same-origin",
                headers: { "Content-Type": "application/json", Accept: "application/json",
                           "X-CSRFToken": me.csrf_token },
                body: JSON.stringify({ records: due.map(function (i) {
                  return { uuid: i.uuid, type: i.type, base_version: i.base_version || null, data: i.data };
                }) })
              });
            });
          }).then(function (response) {
            if (endedSession(response)) throw LOGIN;
            if (!response.ok) throw new Error("sync " + response.status);
            return response.json();
          }).then(function (answer) {
            var byId = {};
            (answer.results || []).forEach(function (r) { byId[r.uuid] = r; });
            return Promise.all(due.map(function (item) {
              var result = byId[item.uuid];
              if (!result) { item.state = "waiting"; return Queue.put(item); }
              if (result.status === "stored" || result.status === "already_stored") {
                return Queue.remove(item.uuid);
              }
              item.state = result.status;  // conflict | rejected: the worker decides
              item.reason = result.reason;
              item.field_errors = result.field_errors;
              return Queue.put(item);
            })).then(function () { return "more"; });
          }).catch(function (error) {
            var login = error === LOGIN;  // not the entries' fault: no retry delay
            due.forEach(function (i) {
              i.state = "waiting";
              if (login) return;
              i.tries = (i.tries || 0) + 1;
              i.next_try = Date.now() + Math.min(300000, 5000 * Math.pow(2, i.tries - 1));
            });
            if (login) Queue.needsLogin(true);
            return Promise.all(due.map(Queue.put)).then(function () { return login ? null : "retry"; });
          });
      }).then(function (outcome) {
        sending = false;
        clearTimeout(retryTimer);
        if (outcome === "more") return Queue.send();
        if (outcome === "retry") retryTimer = setTimeout(Queue.send, 5000);
        return null;
      }, function () { sending = false; });
    },
    // Tell the page whether sending waits for the worker to log in again (field.js shows it).
    loginNeeded: false,
    needsLogin: function (needed) {
      if (Queue.loginNeeded === needed) return;
      Queue.loginNeeded = needed;
      document.dispatchEvent(new CustomEvent("bladi:login", { detail: needed }));
    },
    // The whole queue of this worker as a file: a last resort when sending keeps failing.
    download: function () {
      return Queue.list().then(function (items) {
        var blob = new Blob([JSON.stringify({ format: "bladi-queue", version: 1, items: items }, null, 1)],
                            { type: "application/json" });
        var link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = "bladi-queue-" + new Date().toISOString().slice(0, 16).replace(/[:T]/g, "-") + ".json";
        document.body.appendChild(link);
        link.click();
        link.remove();
      });
    },
    // Entries from such a file (made on another phone) join this worker's queue, once each.
    upload: function (text) {
      var parsed = JSON.parse(text);
      if (!parsed || parsed.format !== "bladi-queue" || !Array.isArray(parsed.items)) {
        throw new Error("not a queue file");
      }
      return Queue.list().then(function (items) {
        var known = {};
        items.forEach(function (i) { known[i.uuid] = true; });
        var fresh = parsed.items.filter(function (i) { return i && i.uuid && i.type && !known[i.uuid]; });
        return Promise.all(fresh.map(function (i) {
          return Queue.put({ uuid: i.uuid, owner: owner, type: i.type, data: i.data,
                             state: "waiting", reason: null, field_errors: null,
                             created: i.created || Date.now(), tries: 0, next_try: 0 });
        })).then(function () { Queue.send(); return fresh.length; });
      });
    }
  };
  window.BladiQueue = Queue;

  // A different worker on this phone, or 12 hours without use: the cached data goes.
  function guardCache() {
    var last = Number(localStorage.getItem("bladi-last-use") || 0);
    var previous = localStorage.getItem("bladi-owner");
    var stale = last && Date.now() - last > IDLE_LIMIT;
    var done = (previous && previous !== owner) || stale ? Queue.wipeCache() : Promise.resolve();
    if (owner) {
      localStorage.setItem("bladi-owner", owner);
      localStorage.setItem("bladi-last-use", String(Date.now()));
    }
    return done;
  }

  function start() {
    if (!body) return;
    guardCache().catch(function () {});
    if (!owner) return;
    if ("serviceWorker" in navigator && body.getAttribute("data-field")) {
      navigator.serviceWorker.register("/sw.js").catch(function () {});
    }
    if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(function () {});
    Queue.changed();
    Queue.send();
    window.addEventListener("online", function () { Queue.send(); });
    setInterval(function () { Queue.send(); }, 30000);
    // Logging out with entries still waiting: warn, and offer to send them first.
    document.querySelectorAll("form[data-logout]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.hasAttribute("data-checked")) return;
        event.preventDefault();
        Queue.list().then(function (items) {
          var waiting = items.filter(function (i) { return i.state !== "sent"; }).length;
          if (waiting && !window.confirm(form.getAttribute("data-warning"))) {
            Queue.send();
            window.location.href = (body.getAttribute("data-field") || "/") + "#queue";
            return;
          }
          return Queue.wipeCache().then(function () {
            localStorage.removeItem("bladi-owner");
            form.setAttribute("data-checked", "");
            form.submit();
          });
        }).catch(function () { form.setAttribute("data-checked", ""); form.submit(); });
      });
    });
  }
  start();
})();
