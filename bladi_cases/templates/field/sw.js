// BLADI Cases service worker: keeps the app shell and the field page so the field app
// opens with no connection. It caches no API answer and no youth data: the field app keeps
// those in IndexedDB for the logged-in worker only.
"use strict";
var SHELL_CACHE = "bladi-shell-{{ version }}";
var PAGE_CACHE = "bladi-pages";
var SHELL = {{ urls|tojson }};
var FIELD = {{ field|tojson }};

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(SHELL_CACHE).then(function (cache) {
    return cache.addAll(SHELL);
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) {
      return key.indexOf("bladi-shell-") === 0 && key !== SHELL_CACHE;
    }).map(function (key) { return caches["delete"](key); }));
  }).then(function () { return self.clients.claim(); }));
});

// At logout (or when another worker uses the phone) the kept page goes too.
self.addEventListener("message", function (event) {
  if (event.data === "forget-pages") caches["delete"](PAGE_CACHE);
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(caches.match(request).then(function (hit) {
      return hit || fetch(request);
    }));
    return;
  }
  // Only the field page is kept: every other page is the server's, as without this worker.
  if (request.mode !== "navigate" || url.pathname !== FIELD) return;
  // Network first, so the page is always the current one online; the kept copy offline.
  event.respondWith(fetch(request).then(function (response) {
    if (response.ok && !response.redirected) {
      var copy = response.clone();
      caches.open(PAGE_CACHE).then(function (cache) { cache.put(FIELD, copy); });
    }
    return response;
  })["catch"](function () {
    return caches.match(FIELD).then(function (hit) { return hit || Response.error(); });
  }));
});
