/* Client-side search over the prebuilt index (window.gallerySearch, from search-index.<hash>.js):
   every word of the query must appear in the title, text, type or genre; case and accents are ignored.
   A row is [id, text, type, genre] or, with a title, [id, text, type, genre, title]. */
(function () {
  "use strict";
  var LIMIT = 60;
  var data = window.gallerySearch;
  var form = document.querySelector("[data-search]");
  var input = document.getElementById("q");
  var status = document.getElementById("search-status");
  var results = document.getElementById("search-results");
  var root = document.body.getAttribute("data-root") || "";
  if (!form || !input || !status || !results) return;
  if (!data) {
    status.textContent = "The search index could not be loaded. Browse all descriptions instead.";
    return;
  }
  form.hidden = false;

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  var items = data.items.map(function (row) {
    var type = row[2] >= 0 ? data.types[row[2]] : null;
    var genre = row[3] >= 0 ? data.genres[row[3]] : null;
    var title = row[4] || "";
    return {
      id: row[0], text: row[1], type: type, genre: genre, title: title,
      hay: fold(title + " " + row[1] + " " + (type ? type[0] : "") + " " + (genre ? genre[0] : ""))
    };
  });

  function chip(className, entry) {
    var element = document.createElement(entry[1] ? "a" : "span");
    if (entry[1]) element.href = root + entry[1];
    element.className = "chip " + className;
    element.dir = "auto";
    element.textContent = entry[0];
    return element;
  }

  function card(item) {
    var article = document.createElement("article");
    article.className = "card";
    var text = document.createElement("p");
    text.className = "card-text";
    text.dir = "auto";
    var link = document.createElement("a");
    link.className = "card-link";
    link.href = root + "d/" + item.id + ".html";
    if (item.title) {
      var head = document.createElement("div");
      var heading = document.createElement("h2");
      heading.className = "card-title";
      heading.dir = "auto";
      link.textContent = item.title;
      heading.appendChild(link);
      text.textContent = item.text;
      head.appendChild(heading);
      head.appendChild(text);
      article.appendChild(head);
    } else {
      link.textContent = item.text;
      text.appendChild(link);
      article.appendChild(text);
    }
    if (item.type || item.genre) {
      var foot = document.createElement("div");
      foot.className = "card-foot";
      var chips = document.createElement("p");
      chips.className = "chips";
      if (item.type) {
        var kind = item.type[0] === "TV Show" ? "chip-tv" : item.type[0] === "Movie" ? "chip-movie" : "chip-other";
        chips.appendChild(chip(kind, item.type));
      }
      if (item.genre) chips.appendChild(chip("chip-genre", item.genre));
      foot.appendChild(chips);
      article.appendChild(foot);
    }
    return article;
  }

  function run(query, remember) {
    var terms = fold(query).split(/\s+/).filter(Boolean);
    results.textContent = "";
    if (remember) {
      try {
        history.replaceState(null, "", terms.length ? "?q=" + encodeURIComponent(query) : location.pathname);
      } catch (error) { /* file:// pages may not rewrite their URL; the search still works */ }
    }
    if (!terms.length) {
      status.textContent = "Type a few words to search " + items.length.toLocaleString("en") + " descriptions.";
      return;
    }
    var found = 0;
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < items.length; i++) {
      var hay = items[i].hay;
      var all = true;
      for (var t = 0; t < terms.length && all; t++) all = hay.indexOf(terms[t]) !== -1;
      if (!all) continue;
      found += 1;
      if (found <= LIMIT) fragment.appendChild(card(items[i]));
    }
    results.appendChild(fragment);
    status.textContent = found === 0
      ? "No description matches \u201c" + query.trim() + "\u201d."
      : found.toLocaleString("en") + (found === 1 ? " description matches" : " descriptions match") +
        " \u201c" + query.trim() + "\u201d" + (found > LIMIT ? "; showing the first " + LIMIT + "." : ".");
  }

  var initial = new URLSearchParams(window.location.search).get("q") || "";
  input.value = initial;
  run(initial, false);
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { run(input.value, true); }, 150);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(timer);
    run(input.value, true);
  });
})();
