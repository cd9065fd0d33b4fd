/* "Random description": without JavaScript the link opens a pre-rendered redirect page;
   with it, pick uniformly among all of the newest night's descriptions (ids loaded on first use). */
(function () {
  "use strict";
  var body = document.body;
  var root = body.getAttribute("data-root") || "";
  var idsSrc = body.getAttribute("data-ids");
  var pending = null;

  function loadIds() {
    if (window.galleryIds) return Promise.resolve(window.galleryIds);
    if (!pending) {
      pending = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = idsSrc;
        script.onload = function () { return window.galleryIds ? resolve(window.galleryIds) : reject(); };
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    return pending;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-random]") : null;
    if (!link || !idsSrc || event.defaultPrevented || event.button !== 0 ||
        event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    loadIds().then(function (ids) {
      window.location.href = ids.length
        ? root + "d/" + ids[Math.floor(Math.random() * ids.length)] + ".html"
        : link.href;
    }, function () { window.location.href = link.href; });
  });
})();
