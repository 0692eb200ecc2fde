// The SQL editor's few behaviours (no build step; loaded by /sql only):
// Ctrl+Enter runs, names complete from /sql/complete, and an error's position is selected in
// the editor. Running, paging and cancelling are plain htmx requests.
(function () {
  "use strict";
  var editor = document.getElementById("sql");
  var list = document.getElementById("completions");
  var run = document.getElementById("run");
  if (!editor || !list || !run) { return; }

  editor.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run.click();
    } else if (e.key === " " && e.ctrlKey) {
      // Ctrl+Space takes the first suggestion.
      var first = list.querySelector("button");
      if (first) { e.preventDefault(); first.click(); }
    } else if (e.key === "Escape") {
      clear();
    }
  });

  // The name being written: letters, digits, '_', '.' and '"' just before the caret.
  function prefixAtCaret() {
    var before = editor.value.slice(0, editor.selectionStart);
    var m = before.match(/[A-Za-z0-9_."]*$/);
    return m ? m[0] : "";
  }

  function clear() {
    while (list.firstChild) { list.removeChild(list.firstChild); }
  }

  // Replaces the last part of the prefix (after its last '.') with `label`.
  function accept(label) {
    var caret = editor.selectionStart;
    var prefix = prefixAtCaret();
    var part = prefix.slice(prefix.lastIndexOf(".") + 1);
    var start = caret - part.length;
    editor.value = editor.value.slice(0, start) + label + editor.value.slice(caret);
    editor.selectionStart = editor.selectionEnd = start + label.length;
    editor.focus();
    clear();
  }

  var timer = null;
  var asked = 0;
  editor.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(suggest, 120);
  });

  function suggest() {
    var prefix = prefixAtCaret();
    if (prefix === "") { clear(); return; }
    var ask = ++asked;
    var url = "/sql/complete?prefix=" + encodeURIComponent(prefix) +
      "&context=" + encodeURIComponent(editor.value.slice(0, 4000));
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { suggestions: [] }; })
      .then(function (body) {
        if (ask !== asked) { return; }
        clear();
        (body.suggestions || []).slice(0, 12).forEach(function (s) {
          var li = document.createElement("li");
          li.setAttribute("role", "option");
          var b = document.createElement("button");
          b.type = "button";
          b.className = "suggestion";
          b.textContent = s.label;
          b.title = s.kind + (s.detail ? ": " + s.detail : "");
          b.addEventListener("click", function () { accept(s.label); });
          var kind = document.createElement("span");
          kind.className = "muted";
          kind.textContent = " " + s.kind;
          li.appendChild(b);
          li.appendChild(kind);
          list.appendChild(li);
        });
      })
      .catch(function () { clear(); });
  }

  // After a run, put the caret where the error is.
  document.body.addEventListener("htmx:afterSwap", function () {
    var err = document.getElementById("sql-error");
    if (!err || !err.dataset.line) { return; }
    var line = parseInt(err.dataset.line, 10), column = parseInt(err.dataset.column, 10);
    var lines = editor.value.split("\n");
    if (line < 1 || line > lines.length) { return; }
    var offset = 0;
    for (var i = 0; i < line - 1; i++) { offset += lines[i].length + 1; }
    offset += Math.min(column - 1, lines[line - 1].length);
    editor.focus();
    editor.setSelectionRange(offset, offset + 1);
  });
})();
