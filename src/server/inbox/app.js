// bosun serve: follow a session's events live (server-sent events). Text only: every value
// goes in through textContent, never as markup.
(function () {
  "use strict";
  var list = document.getElementById("events");
  if (!list || list.dataset.live !== "yes") return;
  var status = document.getElementById("status");
  var state = document.getElementById("state");
  var es = new EventSource(list.dataset.stream + "?after=" + encodeURIComponent(list.dataset.last || "0"));
  var kinds = ["task_started", "assistant_message", "tool_call_started", "guard_decision",
    "tool_call_finished", "approval_requested", "task_interrupted", "subagent_started",
    "subagent_finished", "state_changed", "turn_complete", "task_complete", "task_failed"];
  function add(kind, text) {
    var li = document.createElement("li");
    li.className = "ev ev-" + kind;
    var b = document.createElement("b");
    b.textContent = kind;
    li.appendChild(b);
    li.appendChild(document.createTextNode(" " + text));
    list.appendChild(li);
  }
  kinds.forEach(function (kind) {
    es.addEventListener(kind, function (m) {
      var d;
      try { d = JSON.parse(m.data); } catch (e) { return; }
      add(kind, d.summary || "");
      if (kind === "state_changed" && state) state.textContent = d.event.to;
      if (kind === "approval_requested") { es.close(); window.location.reload(); }
      if (kind === "task_complete" && status) {
        status.textContent = "completed (" + d.event.status + ")";
        status.dataset.status = "completed";
      }
      if (kind === "task_failed" && status) {
        status.textContent = "failed";
        status.dataset.status = "failed";
      }
    });
  });
  es.addEventListener("end", function () {
    es.close();
    if (status) status.dataset.ended = "yes";
  });
})();
